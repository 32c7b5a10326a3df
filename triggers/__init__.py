"""Triggers: what starts runs without a person pressing a button. A webhook starts a run for each signed (or
secret-addressed) POST; a schedule starts one on each tick of a cron expression or a fixed period."""

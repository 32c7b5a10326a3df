"""How each run started: `Run.trigger`, and `LedgerEntry.trigger` on a run's first entry.

Existing runs are given what their rows still tell: `resume` when the run's stored `run_started` event names
the run it resumed from (a resumed run's first event), else `rerun` when it has a source run, else `child`
when a node started it, else `api` (a page start left no mark apart from an API one, and a re-run whose
source run was deleted for good lost its link). One UPDATE over the table, not a loop over the rows.

Existing ledger entries keep a null trigger: the ledger is append-only (migration 0002's trigger refuses
UPDATE), and adding a nullable column without a default writes no row.
"""

from django.db import migrations, models

import runs.models

BACKFILL = """
UPDATE runs_run AS r
SET "trigger" = jsonb_build_object('type', k.kind)
FROM (
    SELECT run.id,
        CASE
            WHEN EXISTS (
                SELECT 1 FROM runs_runevent e
                WHERE e.run_id = run.id AND e.type = 'run_started' AND e.data ? 'resumed_from'
            ) THEN 'resume'
            WHEN run.source_run_id IS NOT NULL THEN 'rerun'
            WHEN run.parent_id IS NOT NULL THEN 'child'
            ELSE 'api'
        END AS kind
    FROM runs_run run
) AS k
WHERE k.id = r.id AND k.kind <> 'api'
"""


class Migration(migrations.Migration):
    dependencies = [("runs", "0006_ledger_refuse_delete")]

    operations = [
        # Every existing row gets {"type": "api"} as the column is added; the backfill corrects the others.
        migrations.AddField(
            model_name="run",
            name="trigger",
            field=models.JSONField(default=runs.models.default_trigger),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="trigger",
            field=models.JSONField(blank=True, null=True),
        ),
        # Going back drops the column, which is all the backfill needs undone.
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]

"""Drop the single-column indexes Django made for foreign keys that a composite index already starts with.

The engine writes node, ledger and event rows and updates the run row at every node; each index on them costs an
entry per write (and WAL, and disk). The database side drops the indexes by name (Django's names are the same on
every installation) instead of Django's AlterField, which would also drop and re-add, so re-validate, every
foreign key over the whole table.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (index, table, column): each one is covered by an index or unique constraint starting with the column.
COVERED = [
    ("runs_ledgerentry_run_id_76dc8f69", "runs_ledgerentry", "run_id"),  # ledger_unique_seq_per_run
    ("runs_noderun_run_id_76a40395", "runs_noderun", "run_id"),  # noderun_unique_per_run
    ("runs_run_owner_id_b1defaec", "runs_run", "owner_id"),  # run_owner_recent_idx
    ("runs_run_workflow_id_a08af1d8", "runs_run", "workflow_id"),  # run_workflow_recent_idx
    ("runs_runevent_run_id_8bd13aa7", "runs_runevent", "run_id"),  # runevent_unique_seq_per_run
]


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0004_run_ledger_counter"),
        ("workflows", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
                )
                for index, table, column in COVERED
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="ledger",
                        to="runs.run",
                    ),
                ),
                migrations.AlterField(
                    model_name="noderun",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="node_runs",
                        to="runs.run",
                    ),
                ),
                migrations.AlterField(
                    model_name="run",
                    name="owner",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="runs",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="run",
                    name="workflow",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="runs",
                        to="workflows.workflow",
                    ),
                ),
                migrations.AlterField(
                    model_name="runevent",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="runs.run",
                    ),
                ),
            ],
        ),
    ]

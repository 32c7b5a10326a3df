"""A node's state is rewritten in place: no index holds a column a transition changes, and each page of the
table keeps a fifth free, so PostgreSQL can update a NodeRun row on its own page without adding an entry to
every index (a heap-only tuple update). The status index served only a run's nodes by status, which the
(run, node_id) constraint's index serves as well for a run's few rows. The fill factor applies to pages
written from now on; `VACUUM FULL runs_noderun` rewrites the old ones when convenient."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0010_run_project_required"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="noderun",
            name="noderun_run_status_idx",
        ),
        migrations.RunSQL(
            "ALTER TABLE runs_noderun SET (fillfactor = 80)",
            "ALTER TABLE runs_noderun RESET (fillfactor)",
        ),
    ]

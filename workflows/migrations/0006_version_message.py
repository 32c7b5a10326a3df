"""A version's message (what the saving user said of the change). The append-only trigger now compares it too,
so the one UPDATE it lets through (deleting the author) cannot change a message either."""

from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION flownova_workflow_version_refuse_update() RETURNS trigger AS $$
BEGIN
    IF NEW.author_id IS NULL
       AND NEW.id = OLD.id AND NEW.workflow_id = OLD.workflow_id AND NEW.number = OLD.number
       AND NEW.document = OLD.document AND NEW.created_at = OLD.created_at AND NEW.message = OLD.message THEN
        RETURN NEW;  -- its author was deleted (ON DELETE SET NULL)
    END IF;
    RAISE EXCEPTION 'workflows_workflowversion is append-only: version % of workflow % cannot be changed',
        OLD.number, OLD.workflow_id USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""

# Back to the function of workflows/migrations/0002_workflow_versions.py, which knows no message.
RESTORE = """
CREATE OR REPLACE FUNCTION flownova_workflow_version_refuse_update() RETURNS trigger AS $$
BEGIN
    IF NEW.author_id IS NULL
       AND NEW.id = OLD.id AND NEW.workflow_id = OLD.workflow_id AND NEW.number = OLD.number
       AND NEW.document = OLD.document AND NEW.created_at = OLD.created_at THEN
        RETURN NEW;  -- its author was deleted (ON DELETE SET NULL)
    END IF;
    RAISE EXCEPTION 'workflows_workflowversion is append-only: version % of workflow % cannot be changed',
        OLD.number, OLD.workflow_id USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0005_workflow_project_required"),
    ]

    operations = [
        migrations.AddField(
            model_name="workflowversion",
            name="message",
            field=models.CharField(blank=True, default="", max_length=500),
        ),
        migrations.RunSQL(CREATE, RESTORE),
    ]

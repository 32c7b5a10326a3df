"""Workflow versions: each save's document, kept. PostgreSQL refuses to change a kept version: the only UPDATE
it lets through is the one deleting its author makes (the author becomes null, nothing else changes)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CREATE = """
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

CREATE TRIGGER workflows_workflowversion_append_only
    BEFORE UPDATE ON workflows_workflowversion
    FOR EACH ROW EXECUTE FUNCTION flownova_workflow_version_refuse_update();
"""

DROP = """
DROP TRIGGER IF EXISTS workflows_workflowversion_append_only ON workflows_workflowversion;
DROP FUNCTION IF EXISTS flownova_workflow_version_refuse_update();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkflowVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField()),
                ("document", models.JSONField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "author",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="versions",
                        to="workflows.workflow",
                    ),
                ),
            ],
            options={
                "ordering": ["workflow", "-number"],
                "constraints": [
                    models.UniqueConstraint(fields=("workflow", "number"), name="workflow_version_unique_number")
                ],
            },
        ),
        migrations.RunSQL(CREATE, DROP),
    ]

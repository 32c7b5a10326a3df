"""The audit log of configuration changes, append-only in the database itself.

UPDATE is always refused. DELETE and TRUNCATE are refused unless the transaction first runs
`SET LOCAL flownova.audit_purge = 'on'`: the `purge_audit` command does, to remove entries older than a cutoff
(`projects.audit.audit_purge`). Deleting a user or a project never touches the log: its links to them have no
database constraint and nothing happens to the entries on delete.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION flownova_audit_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'projects_auditentry is append-only: entry % cannot be changed', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION flownova_audit_refuse_delete() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('flownova.audit_purge', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'projects_auditentry is append-only: % is refused (remove old entries with `manage.py purge_audit`)',
        TG_OP USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER projects_auditentry_append_only
    BEFORE UPDATE ON projects_auditentry
    FOR EACH ROW EXECUTE FUNCTION flownova_audit_refuse_update();

CREATE TRIGGER projects_auditentry_refuse_delete
    BEFORE DELETE ON projects_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION flownova_audit_refuse_delete();

CREATE TRIGGER projects_auditentry_refuse_truncate
    BEFORE TRUNCATE ON projects_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION flownova_audit_refuse_delete();
"""

DROP = """
DROP TRIGGER IF EXISTS projects_auditentry_append_only ON projects_auditentry;
DROP TRIGGER IF EXISTS projects_auditentry_refuse_delete ON projects_auditentry;
DROP TRIGGER IF EXISTS projects_auditentry_refuse_truncate ON projects_auditentry;
DROP FUNCTION IF EXISTS flownova_audit_refuse_update();
DROP FUNCTION IF EXISTS flownova_audit_refuse_delete();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_personal_projects"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("actor_name", models.CharField(blank=True, default="", max_length=150)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("workflow.created", "workflow created"),
                            ("workflow.saved", "workflow saved"),
                            ("workflow.restored", "workflow version restored"),
                            ("workflow.deleted", "workflow deleted"),
                            ("workflow.undeleted", "workflow undeleted"),
                            ("tool.created", "tool created"),
                            ("tool.changed", "tool changed"),
                            ("tool.deleted", "tool deleted"),
                            ("trigger.created", "trigger created"),
                            ("trigger.changed", "trigger changed"),
                            ("trigger.deleted", "trigger deleted"),
                            ("project.created", "project created"),
                            ("project.renamed", "project renamed"),
                            ("project.deleted", "project deleted"),
                            ("member.added", "member added"),
                            ("member.role_changed", "member's role changed"),
                            ("member.removed", "member removed"),
                            ("approval.decided", "approval decided"),
                            ("approval.expired", "approval expired"),
                        ],
                        max_length=40,
                    ),
                ),
                ("object_type", models.CharField(max_length=40)),
                ("object_id", models.BigIntegerField(blank=True, null=True)),
                ("object_repr", models.CharField(blank=True, default="", max_length=300)),
                ("summary", models.TextField()),
                ("changes", models.JSONField(blank=True, default=dict)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="projects.project",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["project", "-created_at"], name="audit_project_newest"),
                    models.Index(fields=["object_type", "object_id"], name="audit_object"),
                ],
            },
        ),
        migrations.RunSQL(CREATE, DROP),
    ]

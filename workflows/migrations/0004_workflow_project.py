import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0001_initial"),
        ("workflows", "0003_workflow_versions_backfill"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="workflow",
            name="workflow_owner_live_idx",
        ),
        migrations.AddField(
            model_name="workflow",
            name="project",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="workflows", to="projects.project"
            ),
        ),
        migrations.AddIndex(
            model_name="workflow",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=["project", "-updated_at"],
                name="workflow_project_live_idx",
            ),
        ),
    ]

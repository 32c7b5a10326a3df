import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0001_initial"),
        ("runs", "0008_child_batches"),
        ("workflows", "0004_workflow_project"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="project",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="projects.project",
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["project", "-created_at"], name="run_project_recent_idx"),
        ),
    ]

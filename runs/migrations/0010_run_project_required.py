import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_personal_projects"),
        ("runs", "0009_run_project"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="project",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="runs", to="projects.project"
            ),
        ),
    ]

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_personal_projects"),
        ("workflows", "0004_workflow_project"),
    ]

    operations = [
        migrations.AlterField(
            model_name="workflow",
            name="project",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="workflows", to="projects.project"
            ),
        ),
    ]

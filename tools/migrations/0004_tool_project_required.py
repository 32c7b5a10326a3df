import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_personal_projects"),
        ("tools", "0003_tool_project"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tool",
            name="project",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="tools", to="projects.project"
            ),
        ),
    ]

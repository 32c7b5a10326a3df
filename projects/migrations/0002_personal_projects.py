"""Existing workflows, tools and runs move into their owner's personal project, created here with the owner as
its admin. A run goes where its workflow went; a run whose workflow was deleted for good, to its owner's."""

from typing import Any

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import OuterRef, Subquery


def _personal(apps: Apps, user_ids: set[int]) -> dict[int, int]:
    """{user id: personal project id} for `user_ids`, creating the projects that are missing."""
    project_model = apps.get_model("projects", "Project")
    membership_model = apps.get_model("projects", "Membership")
    user_model = apps.get_model("auth", "User")
    existing = dict(project_model.objects.filter(personal_of_id__in=user_ids).values_list("personal_of_id", "pk"))
    for user in user_model.objects.filter(pk__in=user_ids - set(existing)).order_by("pk"):
        project = project_model.objects.create(name=f"{user.username} (personal)", personal_of=user, created_by=user)
        membership_model.objects.create(project=project, user=user, role="admin")
        existing[user.pk] = project.pk
    return existing


def into_personal_projects(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    workflow_model = apps.get_model("workflows", "Workflow")
    tool_model = apps.get_model("tools", "Tool")
    run_model = apps.get_model("runs", "Run")
    project_model = apps.get_model("projects", "Project")
    owners: set[int] = set()
    for model in (workflow_model, tool_model, run_model):
        owners |= set(model.objects.filter(project__isnull=True).values_list("owner_id", flat=True).distinct())
    _personal(apps, owners)
    personal = project_model.objects.filter(personal_of_id=OuterRef("owner_id")).values("pk")[:1]
    # One UPDATE per table, not a loop over the rows.
    workflow_model.objects.filter(project__isnull=True).update(project_id=Subquery(personal))
    tool_model.objects.filter(project__isnull=True).update(project_id=Subquery(personal))
    of_workflow = workflow_model.objects.filter(pk=OuterRef("workflow_id")).values("project_id")[:1]
    run_model.objects.filter(project__isnull=True, workflow__isnull=False).update(project_id=Subquery(of_workflow))
    run_model.objects.filter(project__isnull=True).update(project_id=Subquery(personal))


def out_of_projects(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> Any:
    for app, model in (("workflows", "Workflow"), ("tools", "Tool"), ("runs", "Run")):
        apps.get_model(app, model).objects.update(project=None)
    apps.get_model("projects", "Project").objects.filter(personal_of__isnull=False).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0001_initial"),
        ("workflows", "0004_workflow_project"),
        ("tools", "0003_tool_project"),
        ("runs", "0009_run_project"),
    ]

    operations = [migrations.RunPython(into_personal_projects, out_of_projects)]

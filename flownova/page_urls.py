"""The server-rendered pages (included at the site root by flownova/urls.py)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from approvals import views as approval_views
from projects import audit_views
from projects import views as project_views
from runs import replay_views, start_views
from runs import views as run_views
from triggers import views as trigger_views
from workflows import version_views
from workflows import views as workflow_views

urlpatterns = [
    # The list and a workflow's page show runs too, so runs (above workflows) serves them.
    path("", run_views.workflow_list, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("workflows/", run_views.workflow_list, name="workflow_list"),
    path("workflows/new/", workflow_views.workflow_new, name="workflow_new"),
    path("workflows/new/json/", workflow_views.workflow_create_view, name="workflow_create"),
    path("workflows/import/", workflow_views.workflow_import, name="workflow_import"),
    path("workflows/<int:pk>/", start_views.workflow_detail, name="workflow_detail"),
    path("workflows/<int:pk>/edit/", workflow_views.workflow_edit, name="workflow_edit"),
    path("workflows/<int:pk>/duplicate/", workflow_views.workflow_duplicate, name="workflow_duplicate"),
    path("workflows/<int:pk>/delete/", workflow_views.workflow_delete, name="workflow_delete"),
    path("workflows/<int:pk>/export/", workflow_views.workflow_export, name="workflow_export"),
    path("workflows/<int:pk>/runs/", run_views.workflow_runs, name="workflow_runs"),
    path("runs/", run_views.run_list, name="run_list"),
    path("runs/<int:pk>/", run_views.run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel/", run_views.run_cancel_view, name="run_cancel"),
    path("runs/<int:pk>/ledger/<int:seq>/", run_views.ledger_entry, name="ledger_entry"),
    path("runs/<int:pk>/states/", run_views.run_states, name="run_states"),
    path("runs/<int:pk>/nodes/<str:node_id>/", run_views.run_node_detail, name="run_node_detail"),
    path("usage/", run_views.usage, name="usage"),
    path("approvals/", approval_views.inbox, name="approval_inbox"),
    path("approvals/<int:pk>/decide/", approval_views.decide, name="approval_decide"),
]

# Replay: run again, resume from a node, compare two runs.

urlpatterns += [
    path("runs/compare/", replay_views.run_compare, name="run_compare"),
    path("runs/<int:pk>/rerun/", replay_views.run_rerun, name="run_rerun"),
    path("runs/<int:pk>/resume/", replay_views.run_resume_view, name="run_resume"),
]

# A workflow's triggers: the section of its page, and adding, enabling, rotating and deleting them.

urlpatterns += [
    path("workflows/<int:pk>/triggers/", trigger_views.workflow_triggers, name="workflow_triggers"),
    path("workflows/<int:pk>/triggers/preview/", trigger_views.trigger_preview, name="trigger_preview"),
    path("workflows/<int:pk>/triggers/<int:trigger_pk>/toggle/", trigger_views.trigger_toggle, name="trigger_toggle"),
    path(
        "workflows/<int:pk>/triggers/<int:trigger_pk>/rotate/",
        trigger_views.trigger_rotate_view,
        name="trigger_rotate",
    ),
    path(
        "workflows/<int:pk>/triggers/<int:trigger_pk>/delete/",
        trigger_views.trigger_delete_view,
        name="trigger_delete",
    ),
]

# Projects: the list, a project's page and its members.
urlpatterns += [
    path("projects/", project_views.project_list, name="project_list"),
    path("projects/<int:pk>/", project_views.project_detail, name="project_detail"),
    path("projects/<int:pk>/members/", project_views.project_member_set, name="project_member_set"),
    path(
        "projects/<int:pk>/members/<str:username>/remove/",
        project_views.project_member_remove,
        name="project_member_remove",
    ),
]

# A workflow's versions: the section of its page, the diff between two, and restoring one.
urlpatterns += [
    path("workflows/<int:pk>/versions/", version_views.workflow_versions, name="workflow_versions"),
    path("workflows/<int:pk>/versions/diff/", version_views.workflow_version_diff, name="workflow_version_diff"),
    path(
        "workflows/<int:pk>/versions/<int:number>/restore/",
        version_views.workflow_version_restore,
        name="workflow_version_restore",
    ),
]

# The audit log of configuration changes.
urlpatterns += [path("audit/", audit_views.audit_log, name="audit_log")]

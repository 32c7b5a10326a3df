"""Project pages: the list of your projects with a form to create one, and a project's page with its workflows,
tools and members, where its admins add members, change roles and remove them.

Scoped like the API: a project is looked up among those the user may see (someone outside it gets 404), and
every change asks `projects.permissions`. Writes go through `projects.services`; their refusals (the last admin,
a personal project) are shown beside the members. The member forms answer HTMX with the members section redrawn,
and a plain POST with a redirect to the project's page.

Projects sits below workflows and tools: a project's workflows and tools are read through its reverse relations
(`project.workflows`, `project.tools`), and linked by URL name, never by importing those apps.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flownova.pages import HtmxHttpRequest, htmx_partial
from flownova.users import signed_in_user
from projects.forms import MemberForm, ProjectForm
from projects.models import Membership, Project, Role
from projects.permissions import Action, allowed, require, role_in, scoped
from projects.services import MembershipError, member_remove, member_set, personal_project, project_create

MEMBERS_TEMPLATE = "projects/_members.html"


def visible_projects(request: HtmxHttpRequest) -> QuerySet[Project]:
    return scoped(Project.objects.all(), request.user, Action.VIEW, via="pk")


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HtmxHttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    personal_project(user)
    form = ProjectForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        project = project_create(name=form.cleaned_data["name"], by=user)
        messages.success(request, f"Created the project “{project.name}”; you are its admin.")
        return redirect("project_detail", pk=project.pk)
    mine = Membership.objects.filter(project=OuterRef("pk"), user_id=user.pk).values("role")[:1]
    projects = (
        visible_projects(request)
        .annotate(
            my_role=Subquery(mine),
            member_total=Count("memberships", distinct=True),
            workflow_total=Count("workflows", filter=Q(workflows__deleted_at__isnull=True), distinct=True),
            tool_total=Count("tools", distinct=True),
        )
        .order_by("personal_of_id", "name", "id")
    )
    status = 400 if request.method == "POST" else 200
    return render(request, "projects/list.html", {"projects": projects, "form": form}, status=status)


def members_context(request: HtmxHttpRequest, project: Project, **extra: Any) -> dict[str, Any]:
    user = signed_in_user(request)
    return {
        "project": project,
        "members": Membership.objects.filter(project=project).select_related("user").order_by("user__username"),
        "can_manage": allowed(user, Action.MANAGE, project.pk),
        "roles": [role.value for role in Role],
        "member_form": MemberForm(),
        **extra,
    }


@login_required
@require_GET
def project_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(visible_projects(request), pk=pk)
    role = role_in(request.user, project.pk)
    context = members_context(
        request,
        project,
        role=role.value if role else None,
        can_edit=allowed(request.user, Action.EDIT, project.pk),
        workflows=project.workflows.filter(deleted_at__isnull=True).order_by("name", "id"),
        tools=project.tools.order_by("name", "id"),
    )
    return render(request, "projects/detail.html", context)


def _members_answer(
    request: HtmxHttpRequest, project: Project, *, error: str = "", done: str = "", status: int = 200, **extra: Any
) -> HttpResponse:
    """HTMX: the members section redrawn, with the refusal or the outcome in it. Otherwise: back to the project's
    page, with the same sentence as a message (a refusal by role: the 403 page)."""
    if htmx_partial(request):
        context = members_context(request, project, error=error, done=done, **extra)
        return render(request, MEMBERS_TEMPLATE, context, status=status)
    if status == 403:  # a refusal by role is the 403 page, as everywhere else
        raise PermissionDenied(error)
    if error:
        messages.error(request, error)
    elif done:
        messages.success(request, done)
    return redirect("project_detail", pk=project.pk)


@login_required
@require_POST
def project_member_set(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Add a member with a role, or change a member's role (admins)."""
    project = get_object_or_404(visible_projects(request), pk=pk)
    try:
        require(request.user, Action.MANAGE, project.pk)
    except PermissionDenied as exc:
        return _members_answer(request, project, error=str(exc), status=403)
    form = MemberForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {error}" for name, errors in form.errors.items() for error in errors)
        return _members_answer(request, project, error=problems, status=400, member_form=form)
    username = form.cleaned_data["user"].strip()
    member = User.objects.filter(username=username, is_active=True).first()
    if member is None:
        return _members_answer(request, project, error=f"There is no user named “{username}”.", status=400)
    try:
        membership = member_set(
            project=project, user=member, role=form.cleaned_data["role"], by=signed_in_user(request)
        )
    except MembershipError as exc:
        return _members_answer(request, project, error=str(exc), status=409)
    return _members_answer(request, project, done=f"{username} is now {membership.role} of “{project.name}”.")


@login_required
@require_POST
def project_member_remove(request: HtmxHttpRequest, pk: int, username: str) -> HttpResponse:
    """Take a member out of the project (admins), or leave it (the member themself)."""
    project = get_object_or_404(visible_projects(request), pk=pk)
    user = signed_in_user(request)
    leaving = username == user.get_username()
    if not leaving:
        try:
            require(user, Action.MANAGE, project.pk)
        except PermissionDenied as exc:
            return _members_answer(request, project, error=str(exc), status=403)
    membership = Membership.objects.filter(project=project, user__username=username).select_related("user").first()
    if membership is None:
        return _members_answer(request, project, error=f"{username} is not a member of this project.", status=400)
    try:
        member_remove(project=project, user=membership.user, by=user)
    except MembershipError as exc:
        return _members_answer(request, project, error=str(exc), status=409)
    if leaving and not allowed(user, Action.VIEW, project.pk):
        messages.success(request, f"You left “{project.name}”.")
        if htmx_partial(request):  # the page is no longer theirs to see: send the browser to the list
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("project_list")
            return response
        return redirect("project_list")
    return _members_answer(request, project, done=f"Removed {username} from “{project.name}”.")

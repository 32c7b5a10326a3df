"""The tool admin. Saves and deletes go through tools.services, like the API: the same validation, secrets
encrypted on the way in and bound to the URL's origin, and no deleting a tool that saved workflows use."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.text import Truncator

from flownova.jsonbody import JSONInputError, parse_json
from flownova.users import signed_in_user
from tools.calling import ToolCallError, tool_test_call
from tools.definitions import HEADER_NAME_RE, ToolDefinitionError, tool_validate_definition
from tools.models import Tool, ToolCall
from tools.services import (
    ToolInUseError,
    tool_create,
    tool_delete,
    tool_example_arguments,
    tool_secret_header_names,
    tool_update,
)
from tools.uses import tool_workflows_using

DEFINITION_FIELDS = ("name", "description", "method", "url", "headers", "parameters", "timeout_seconds", "is_active")
MAX_TEST_CALLS = 10


def parse_secret_headers(text: str) -> dict[str, str]:
    """`Name: value` lines, or a JSON object. Raises ValidationError naming the line, never echoing a value."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            parsed = parse_json(stripped)
        except JSONInputError as exc:  # the messages name the place, never the secret value
            raise forms.ValidationError(f"This is not a valid JSON object: {exc.message}.") from None
        if not isinstance(parsed, dict) or not all(isinstance(value, str) for value in parsed.values()):
            raise forms.ValidationError("The JSON must be an object of header names to string values.")
        return parsed
    headers: dict[str, str] = {}
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not HEADER_NAME_RE.fullmatch(name.strip()):
            raise forms.ValidationError(f"Line {number} is not `Name: value` with a valid header name.")
        headers[name.strip()] = value.strip()
    return headers


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value, not even the one just submitted when the form comes back with errors."""

    def format_value(self, value: Any) -> str:
        return ""


class ToolAdminForm(forms.ModelForm[Tool]):
    secret_headers = forms.CharField(
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Write-only. One `Name: value` per line (or a JSON object). Replaces every secret header; leave "
        "blank to keep the current ones. Stored encrypted; never shown again. They are only sent to the origin "
        "(scheme, host and port) of the URL they were entered with: changing the URL to another origin removes "
        "them unless you enter them again here.",
    )
    clear_secret_headers = forms.BooleanField(required=False, help_text="Remove every secret header.")

    class Meta:
        model = Tool
        fields = ["project", "owner", *DEFINITION_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "project" in self.fields:
            project = self.fields["project"]
            if self.instance.pk:  # a tool stays in its project
                project.disabled = True
            else:
                project.required = False
                project.help_text = "Empty: the owner's personal project."
        if self.instance.pk and self.instance.has_secret_headers:
            names = tool_secret_header_names(tool=self.instance)
            current = ", ".join(names) if names is not None else "unreadable with the configured keys: enter them again"
            self.fields["secret_headers"].help_text += f" Current secret headers: {current}."

    def clean_secret_headers(self) -> dict[str, str] | None:
        text = self.cleaned_data.get("secret_headers") or ""
        return parse_secret_headers(text) if text.strip() else None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("clear_secret_headers") and cleaned.get("secret_headers"):
            self.add_error("clear_secret_headers", "Either enter new secret headers or clear them, not both.")
        errors = tool_validate_definition(
            name=cleaned.get("name"),
            method=cleaned.get("method"),
            url=cleaned.get("url"),
            parameters=cleaned.get("parameters"),
            headers=cleaned.get("headers") or {},
            secret_headers=cleaned.get("secret_headers"),
            timeout_seconds=cleaned.get("timeout_seconds"),
        )
        for field, messages_ in errors.items():
            for message in messages_:
                self.add_error(field if field in self.fields else None, message)
        return cleaned

    def secret_headers_change(self) -> dict[str, str] | None:
        """What to do with the stored secrets: None keeps them, a dict replaces them ({} removes them)."""
        if self.cleaned_data.get("clear_secret_headers"):
            return {}
        return self.cleaned_data.get("secret_headers")


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin[Tool]):
    form = ToolAdminForm
    list_display = ("name", "project", "owner", "method", "url", "is_active", "has_secret_headers", "updated_at")
    list_filter = ("method", "is_active")
    search_fields = ("name", "description", "url", "owner__username", "project__name")
    list_select_related = ("owner", "project")
    readonly_fields = ("created_at", "updated_at")
    raw_id_fields = ("owner", "project")
    actions = ["make_test_call"]

    @admin.display(boolean=True, description="secrets")
    def has_secret_headers(self, obj: Tool) -> bool:
        return obj.has_secret_headers

    def save_model(self, request: HttpRequest, obj: Tool, form: ToolAdminForm, change: bool) -> None:
        # Through the services, like the API: the same validation, and the secrets encrypted on the way in.
        secret_headers = form.secret_headers_change()
        try:
            fields = {field: getattr(obj, field) for field in DEFINITION_FIELDS}
            fields["headers"] = fields["headers"] or {}  # a cleared JSON field reads as None
            if change:
                outcome = tool_update(
                    tool=obj, fields=fields, secret_headers=secret_headers, by=signed_in_user(request)
                )
                if outcome.notice:
                    messages.warning(request, outcome.notice)
            else:
                project = obj.project if obj.project_id else None  # None: the owner's personal project
                created = tool_create(
                    owner=obj.owner,
                    project=project,
                    secret_headers=secret_headers,
                    by=signed_in_user(request),
                    **fields,
                )
                obj.pk = created.pk
        except ToolDefinitionError as exc:
            # Validated in the form already; only a race (the same name saved meanwhile) gets here.
            messages.error(request, f"Not saved: {exc}")
            raise

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, Any, list[Any]]:
        """Tools that saved workflows use are shown as protected: the confirmation page refuses to delete them
        (for one tool and for the bulk action alike) and names the workflows."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_use = []
        for tool in objs:
            using = tool_workflows_using(tool=tool)
            if using:
                in_use.append(f"{ToolInUseError(tool.name, using)}.")
        return deleted, counts, perms_needed, [*protected, *in_use]

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ToolInUseError as exc:  # a workflow started using it after the confirmation page was shown
            self.message_user(request, f"Not deleted: {exc}.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:tools_tool_change", args=[object_id]))

    def delete_model(self, request: HttpRequest, obj: Tool) -> None:
        tool_delete(tool=obj, by=signed_in_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        try:
            with transaction.atomic():
                for tool in queryset:
                    tool_delete(tool=tool, by=signed_in_user(request))
        except ToolInUseError as exc:  # a workflow started using one after the confirmation page was shown
            self.message_user(request, f"Nothing was deleted: {exc}.", messages.ERROR)

    @admin.action(description="Make a test call")
    def make_test_call(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        """Call each selected tool with arguments from its schema's examples or defaults; show the answer."""
        tools = list(queryset[: MAX_TEST_CALLS + 1])
        if len(tools) > MAX_TEST_CALLS:
            self.message_user(request, f"Select at most {MAX_TEST_CALLS} tools to test at once.", messages.WARNING)
            return
        for tool in tools:
            arguments = tool_example_arguments(tool=tool)
            shown = json.dumps(arguments, ensure_ascii=False)
            try:
                call = tool_test_call(tool=tool, arguments=arguments)
            except ToolCallError as exc:
                self.message_user(request, f"{tool.name}: {exc}; enable it to test it.", messages.ERROR)
                continue
            if call["ok"]:
                answer = Truncator(call["response"]).chars(300)
                self.message_user(
                    request,
                    f"{tool.name} with {shown}: HTTP {call['status_code']} in {call['duration_ms']} ms: {answer}",
                    messages.SUCCESS,
                )
            else:
                answer = Truncator(call["response"]).chars(300)
                detail = f" Answer: {answer}" if answer else ""
                self.message_user(request, f"{tool.name} with {shown}: {call['error']}.{detail}", messages.ERROR)


@admin.register(ToolCall)
class ToolCallAdmin(admin.ModelAdmin[ToolCall]):
    list_display = ("tool_name", "method", "state", "status_code", "duration_ms", "run", "node_id", "created_at")
    list_filter = ("state", "method", "status_code")
    search_fields = ("tool_name", "url", "node_id", "=run__id", "error")
    date_hierarchy = "created_at"
    raw_id_fields = ("tool", "run")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ToolCall | None = None) -> bool:
        return False

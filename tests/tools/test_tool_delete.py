"""A tool that saved workflows still use cannot be deleted (API 409, admin refusal), and the record of its calls
outlives it when it goes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

import nodes
from nodes.base import NodeContext, NodeResult, NodeType, data_schema
from nodes.spec import NodeSpec
from tests.engine_helpers import graph_of
from tests.factories import make_workflow
from tools.models import Tool, ToolCall
from tools.services import ToolInUseError, tool_create, tool_delete
from tools.uses import tool_workflows_using
from workflows.services import workflow_soft_delete

pytestmark = pytest.mark.django_db

AGENT = {"user_prompt": "hi", "tools": ["lookup", "weather"]}
COGNITIVE = {"goal": "plan", "tools": ["weather"]}


def tool_node_graph(name: str = "weather") -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("call", "tool", {"tool": name}), ("end", "end", {})],
        [("start", "call"), ("call", "end", "success")],
    )


def agent_graph(data: dict[str, Any]) -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("think", "agent", data), ("end", "end", {})], [("start", "think"), ("think", "end")]
    )


@pytest.fixture
def weather(alice: User) -> Tool:
    return tool_create(owner=alice, name="weather", url="https://api.example.test/w")


def test_the_workflows_using_a_tool_are_found_through_tool_nodes_and_agent_tools(
    alice: User, mallory: User, weather: Tool
) -> None:
    by_node = make_workflow(alice, name="By node", graph=tool_node_graph())
    by_agent = make_workflow(alice, name="By agent", graph=agent_graph(AGENT))
    make_workflow(alice, name="Other tool", graph=tool_node_graph("lookup"))
    make_workflow(alice, name="No tools")
    make_workflow(mallory, name="Mallory's", graph=tool_node_graph())  # runs with mallory's own tools
    gone = make_workflow(alice, name="Deleted", graph=tool_node_graph())
    workflow_soft_delete(workflow=gone)
    assert tool_workflows_using(tool=weather) == [(by_node.pk, "By node"), (by_agent.pk, "By agent")]


def test_deleting_a_tool_in_use_is_refused_naming_the_workflows(alice: User, weather: Tool) -> None:
    workflow = make_workflow(alice, name="Forecast", graph=tool_node_graph())
    with pytest.raises(ToolInUseError) as caught:
        tool_delete(tool=weather)
    assert caught.value.workflows == [(workflow.pk, "Forecast")]
    assert "'weather'" in str(caught.value) and f"'Forecast' (id {workflow.pk})" in str(caught.value)
    assert Tool.objects.filter(pk=weather.pk).exists()


def test_a_tool_nobody_uses_is_deleted_and_its_calls_stay_readable(alice: User, weather: Tool) -> None:
    ToolCall.objects.create(tool=weather, tool_name="weather", method="GET", url="https://api.example.test/w")
    tool_delete(tool=weather)
    assert not Tool.objects.exists()
    call = ToolCall.objects.get()
    assert call.tool is None and call.tool_name == "weather" and str(call)


# --- the API ------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(alice: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.mark.urls("tests.tools.urls")
def test_the_api_answers_409_naming_the_workflows(api: APIClient, alice: User, weather: Tool) -> None:
    workflow = make_workflow(alice, name="Forecast", graph=agent_graph(AGENT))
    response = api.delete(f"/api/tools/{weather.pk}/")
    assert response.status_code == 409
    data = response.json()
    assert data["workflows"] == [{"id": workflow.pk, "name": "Forecast"}]
    assert "Forecast" in data["detail"] and "weather" in data["detail"]
    assert Tool.objects.filter(pk=weather.pk).exists()

    workflow_soft_delete(workflow=workflow)
    assert api.delete(f"/api/tools/{weather.pk}/").status_code == 204


@pytest.mark.urls("tests.tools.urls")
def test_a_cognitive_node_allowed_the_tool_counts_as_a_use(api: APIClient, alice: User, weather: Tool) -> None:
    workflow = make_workflow(alice, name="Planner", graph=agent_graph({"user_prompt": "x"}))
    workflow.nodes.filter(node_id="think").update(type="cognitive", data=COGNITIVE)
    response = api.delete(f"/api/tools/{weather.pk}/")
    assert response.status_code == 409 and response.json()["workflows"] == [{"id": workflow.pk, "name": "Planner"}]


# --- the admin ----------------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client: Client, superuser: User) -> Client:
    client.force_login(superuser)
    return client


def test_the_admin_refuses_to_delete_a_tool_in_use(admin_client: Client, alice: User, weather: Tool) -> None:
    make_workflow(alice, name="Forecast", graph=tool_node_graph())
    url = reverse("admin:tools_tool_delete", args=[weather.pk])
    page = admin_client.get(url).content.decode()
    assert "cannot be deleted" in page and "Forecast" in page and 'name="post"' not in page
    response = admin_client.post(url, {"post": "yes"})
    assert Tool.objects.filter(pk=weather.pk).exists()
    assert "Forecast" in response.content.decode()


def test_the_admin_bulk_delete_refuses_tools_in_use(admin_client: Client, alice: User, weather: Tool) -> None:
    make_workflow(alice, name="Forecast", graph=tool_node_graph())
    unused = tool_create(owner=alice, name="unused", url="https://api.example.test/u")
    changelist = reverse("admin:tools_tool_changelist")
    response = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [weather.pk, unused.pk], "post": "yes"}
    )
    assert Tool.objects.filter(pk=weather.pk).exists() and Tool.objects.filter(pk=unused.pk).exists()
    assert "Forecast" in response.content.decode()


def test_the_admin_deletes_an_unused_tool(admin_client: Client, weather: Tool) -> None:
    response = admin_client.post(reverse("admin:tools_tool_delete", args=[weather.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Tool.objects.exists()
    assert any("deleted" in str(m) for m in get_messages(response.wsgi_request))


def no_result(ctx: NodeContext) -> NodeResult:
    return NodeResult()


def test_a_node_type_that_declares_a_tool_field_makes_its_workflows_users_of_the_tool(
    alice: User, weather: Tool, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = data_schema({"service": {"type": "string"}})
    plugin = NodeType(
        spec=NodeSpec(type="test_names_a_tool", data_schema=schema), execute=no_result, tool_fields={"service": "one"}
    )
    monkeypatch.setitem(nodes._REGISTRY, plugin.type, plugin)  # registered for this test only
    graph = graph_of(
        [("start", "start", {}), ("call", "test_names_a_tool", {"service": "weather"}), ("end", "end", {})],
        [("start", "call"), ("call", "end")],
    )
    workflow = make_workflow(alice, name="Plug-in", graph=graph)
    assert tool_workflows_using(tool=weather) == [(workflow.pk, "Plug-in")]

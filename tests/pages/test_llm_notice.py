"""Before anything runs, the editor and the run form say when LLM nodes would fail for want of a provider,
naming FLOWNOVA_LLM_URL; the agent's form shows the model a node without one uses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from flownova.llm_config import llm_server_parse
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings.FLOWNOVA_LLM_SERVER = None
    settings.FLOWNOVA_DEFAULT_MODEL = "openai/gpt-4o-mini"


def agent_graph(**agent: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "summarise", "type": "agent", "data": {"user_prompt": "Summarise {{input}}", **agent}},
            {"id": "end", "type": "end", "data": {}},
        ],
        "edges": [{"source": "start", "target": "summarise"}, {"source": "summarise", "target": "end"}],
    }


def plain_graph() -> dict[str, Any]:
    return {
        "nodes": [{"id": "start", "type": "start", "data": {}}, {"id": "end", "type": "end", "data": {}}],
        "edges": [{"source": "start", "target": "end"}],
    }


def notice(client: Client, url: str) -> str | None:
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    if 'id="llm-notice"' not in html:
        return None
    start = html.index('id="llm-notice"')
    return html[start : html.index("</div>", start)]


@pytest.mark.usefixtures("no_provider")
def test_the_editor_says_what_to_set_when_no_provider_is_configured(client: Client, alice: User) -> None:
    client.force_login(alice)
    text = notice(client, reverse("workflow_new"))
    assert text is not None
    assert "No LLM provider is configured" in text and "<code>openai/gpt-4o-mini</code>" in text
    assert "<code>FLOWNOVA_LLM_URL</code>" in text and "http://127.0.0.1:11434/v1#llama3.2" in text
    workflow = make_workflow(alice, graph=agent_graph())
    assert "<code>summarise</code>" in (notice(client, reverse("workflow_edit", args=[workflow.pk])) or "")


@pytest.mark.usefixtures("no_provider")
def test_the_run_form_warns_only_for_a_workflow_with_llm_nodes(client: Client, alice: User) -> None:
    client.force_login(alice)
    with_agent = make_workflow(alice, name="Agent", graph=agent_graph())
    text = notice(client, reverse("workflow_detail", args=[with_agent.pk]))
    assert text is not None
    assert "this workflow's LLM nodes (<code>summarise</code>) will fail" in text
    assert "FLOWNOVA_LLM_URL" in text
    plain = make_workflow(alice, name="Plain", graph=plain_graph())
    assert notice(client, reverse("workflow_detail", args=[plain.pk])) is None


@pytest.mark.usefixtures("no_provider")
def test_a_node_whose_own_provider_is_configured_is_not_warned_about(
    client: Client, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    client.force_login(alice)
    workflow = make_workflow(alice, graph=agent_graph(model="anthropic/claude-sonnet-4"))
    assert notice(client, reverse("workflow_detail", args=[workflow.pk])) is None
    # The editor still speaks of the default model, which a new node would use.
    assert "openai/gpt-4o-mini" in (notice(client, reverse("workflow_edit", args=[workflow.pk])) or "")


def test_no_notice_once_the_variable_is_set(client: Client, alice: User, no_provider: None, settings: Settings) -> None:
    settings.FLOWNOVA_LLM_SERVER = llm_server_parse("http://127.0.0.1:11434/v1#llama3.2")
    settings.FLOWNOVA_DEFAULT_MODEL = "openai/llama3.2"
    client.force_login(alice)
    workflow = make_workflow(alice, graph=agent_graph())
    assert notice(client, reverse("workflow_detail", args=[workflow.pk])) is None
    assert notice(client, reverse("workflow_edit", args=[workflow.pk])) is None


def test_the_agent_form_shows_the_default_model(client: Client, alice: User, settings: Settings) -> None:
    settings.FLOWNOVA_DEFAULT_MODEL = "openai/llama3.2"
    client.force_login(alice)
    catalogue = client.get(reverse("workflow_new")).context["catalogue"]
    by_type = {entry["type"]: entry for entry in catalogue}
    for kind in ("agent", "guardrails", "cognitive"):
        model = by_type[kind]["data_schema"]["properties"]["model"]
        assert by_type[kind]["uses_llm"] is True
        assert model["x-placeholder"] == "openai/llama3.2"
        assert "openai/llama3.2" in model["description"]
    assert by_type["transform"]["uses_llm"] is False
    # The page embeds what the form reads.
    html = client.get(reverse("workflow_new")).content.decode()
    assert json.dumps("openai/llama3.2") in html

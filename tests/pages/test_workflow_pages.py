"""Workflow pages: list, create (with every graph issue shown), duplicate, delete, import, export, run form."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from django.utils.html import escape

from runs.models import Run
from tests.factories import linear_graph, make_run, make_workflow
from workflows.models import Workflow
from workflows.services import workflow_soft_delete

pytestmark = pytest.mark.django_db

SCHEMA_GRAPH = {
    "nodes": [
        {
            "id": "start",
            "type": "start",
            "data": {
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "integer", "minimum": 1},
                        "note": {"type": "string"},
                        "urgent": {"type": "boolean"},
                        "currency": {"type": "string", "enum": ["EUR", "USD"]},
                    },
                    "required": ["amount", "currency"],
                }
            },
        },
        {"id": "end", "type": "end", "data": {}},
    ],
    "edges": [{"id": "e0", "source": "start", "target": "end"}],
}


def test_anonymous_is_sent_to_the_login_page(client: Client, alice: User) -> None:
    workflow = make_workflow(alice)
    for url in ("/", reverse("workflow_detail", args=[workflow.pk]), reverse("run_list"), reverse("approval_inbox")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_login_page_logs_in_and_logout_logs_out(client: Client, alice: User) -> None:
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content
    response = client.post("/login/", {"username": "alice", "password": "alice-password", "next": "/runs/"})
    assert response.status_code == 302 and response["Location"] == "/runs/"
    home = client.get("/")
    assert b"Signed in as <strong>alice</strong>" in home.content
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_list_shows_own_workflows_with_last_run_status_and_header(client: Client, alice: User, mallory: User) -> None:
    mine = make_workflow(alice, name="Refunds")
    make_run(mine, status="failed")
    make_workflow(mallory, name="Mallory's secret")
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "Refunds" in page and "Mallory&#x27;s secret" not in page and "Mallory's secret" not in page
    assert 'class="badge status-failed"' in page
    assert 'href="/approvals/"' in page and 'id="approvals-count"' in page
    assert "/static/django_htmx/htmx-2.min.js" in page and "/static/flownova/live.js" in page


def test_staff_see_every_workflow(client: Client, alice: User, superuser: User) -> None:
    workflow = make_workflow(alice, name="Refunds")
    client.force_login(superuser)
    assert "Refunds" in client.get("/workflows/").content.decode()
    assert client.get(reverse("workflow_detail", args=[workflow.pk])).status_code == 200


def test_outsider_gets_404_on_every_workflow_page(client: Client, alice: User, mallory: User) -> None:
    workflow = make_workflow(alice)
    client.force_login(mallory)
    for name in ("workflow_detail", "workflow_export", "workflow_delete", "workflow_runs"):
        assert client.get(reverse(name, args=[workflow.pk])).status_code == 404, name
    for name in ("workflow_duplicate", "workflow_delete", "workflow_detail"):
        assert client.post(reverse(name, args=[workflow.pk]), {"input_json": "{}"}).status_code == 404, name
    workflow.refresh_from_db()
    assert workflow.deleted_at is None and Workflow.objects.count() == 1 and not Run.objects.exists()


def test_create_form_is_prefilled_with_a_valid_graph_and_creates(client: Client, alice: User) -> None:
    client.force_login(alice)
    page = client.get(reverse("workflow_create"))
    graph = page.context["form"].initial["graph"]
    assert '<label for="id_graph">' in page.content.decode()
    response = client.post(reverse("workflow_create"), {"name": "Fresh", "description": "d", "graph": graph})
    workflow = Workflow.objects.get(name="Fresh")
    assert response.status_code == 302 and response["Location"] == reverse("workflow_detail", args=[workflow.pk])
    assert workflow.owner == alice and [n["id"] for n in workflow.graph_document()["nodes"]] == ["start", "end"]


def test_invalid_graph_shows_every_issue_with_its_node_or_edge(client: Client, alice: User) -> None:
    client.force_login(alice)
    graph = {
        "nodes": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "check", "type": "if_else", "data": {"left": "{{input.a}}", "operator": "bogus", "right": 1}},
            {"id": "end", "type": "end", "data": {}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "check"},
            {"id": "dangling", "source": "check", "target": "nowhere"},
        ],
    }
    response = client.post(reverse("workflow_create"), {"name": "Bad", "graph": json.dumps(graph)})
    assert response.status_code == 400
    issues = response.context["issues"]
    assert len(issues) >= 2
    page = response.content.decode()
    for issue in issues:
        assert escape(issue["message"]) in page
    assert "node <code>check</code>" in page and "edge <code>dangling</code>" in page
    assert not Workflow.objects.filter(name="Bad").exists()


def test_create_with_broken_json_says_so(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post(reverse("workflow_create"), {"name": "Bad", "graph": "{nodes"})
    assert response.status_code == 400 and "not valid JSON" in response.content.decode()


def test_duplicate_delete_export_import_round_trip(client: Client, alice: User) -> None:
    original = make_workflow(alice, name="Refunds", graph=linear_graph(("pause", "fork", {})))
    client.force_login(alice)
    assert client.post(reverse("workflow_duplicate", args=[original.pk])).status_code == 302
    copy = Workflow.objects.get(name="Refunds (copy)")
    assert copy.graph_document() == original.graph_document()

    confirm = client.get(reverse("workflow_delete", args=[copy.pk]))
    assert confirm.status_code == 200 and "csrfmiddlewaretoken" in confirm.content.decode()
    assert client.post(reverse("workflow_delete", args=[copy.pk])).status_code == 302
    copy.refresh_from_db()
    assert copy.deleted_at is not None
    assert list(client.get("/").context["workflows"]) == [original]

    export = client.get(reverse("workflow_export", args=[original.pk]))
    assert export["Content-Disposition"] == f'attachment; filename="refunds-v{original.version}.json"'
    document = json.loads(export.content)
    assert document == original.document()

    upload = SimpleUploadedFile("refunds.json", json.dumps({**document, "name": "Imported"}).encode())
    response = client.post(reverse("workflow_import"), {"file": upload})
    imported = Workflow.objects.get(name="Imported")
    assert response.status_code == 302 and imported.owner == alice
    assert json.loads(client.get(reverse("workflow_export", args=[imported.pk])).content)["graph"] == document["graph"]


def test_import_of_the_seed_format_converts_it(client: Client, alice: User) -> None:
    seed = {
        "name": "Seeded",
        "nodes": [
            {"id": "s", "type": "custom", "data": {"type": "start"}},
            {
                "id": "c",
                "type": "custom",
                "data": {"type": "ifElse", "lhs": "{{input.n}}", "condition": "greater_than", "rhs": 3},
            },
            {"id": "big", "type": "custom", "data": {"type": "end"}},
            {"id": "small", "type": "custom", "data": {"type": "end"}},
        ],
        "edges": [
            {"id": "e1", "source": "s", "target": "c"},
            {"id": "e2", "source": "c", "target": "big", "source_handle": "true"},
            {"id": "e3", "source": "c", "target": "small", "source_handle": "false"},
        ],
    }
    client.force_login(alice)
    response = client.post(
        reverse("workflow_import"), {"file": SimpleUploadedFile("seed.json", json.dumps(seed).encode())}
    )
    assert response.status_code == 302
    graph = Workflow.objects.get(name="Seeded").graph_document()
    check = next(node for node in graph["nodes"] if node["id"] == "c")
    assert check["type"] == "if_else" and isinstance(check["data"], dict) and check["data"]["operator"] == ">"


def test_import_of_a_bad_file_shows_the_problems(client: Client, alice: User) -> None:
    client.force_login(alice)
    broken = client.post(reverse("workflow_import"), {"file": SimpleUploadedFile("x.json", b"{not json")})
    assert broken.status_code == 400 and "not valid JSON" in broken.content.decode()
    bad_graph = {"name": "X", "graph": {"nodes": [{"id": "end", "type": "end", "data": {}}], "edges": []}}
    invalid = client.post(
        reverse("workflow_import"), {"file": SimpleUploadedFile("x.json", json.dumps(bad_graph).encode())}
    )
    assert invalid.status_code == 400 and invalid.context["issues"]
    assert not Workflow.objects.exists()


def test_detail_lists_nodes_and_edges_and_runs_with_json_input(client: Client, alice: User) -> None:
    workflow = make_workflow(alice, graph=linear_graph(("middle", "fork", {})))
    client.force_login(alice)
    page = client.get(reverse("workflow_detail", args=[workflow.pk])).content.decode()
    assert 'id="graph-nodes"' in page and "<code>middle</code>" in page and 'id="graph-edges"' in page
    assert '<label for="id_input_json">' in page and 'id="run-form-fields"' not in page

    bad = client.post(reverse("workflow_detail", args=[workflow.pk]), {"input_mode": "json", "input_json": "[1]"})
    assert bad.status_code == 400 and "input must be a JSON object" in bad.content.decode()
    response = client.post(
        reverse("workflow_detail", args=[workflow.pk]), {"input_mode": "json", "input_json": '{"a": 1}'}
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("run_detail", args=[run.pk])
    assert run.input == {"a": 1} and run.owner == alice


def test_schema_generates_the_run_form_fields(client: Client, alice: User) -> None:
    workflow = make_workflow(alice, graph=SCHEMA_GRAPH)
    url = reverse("workflow_detail", args=[workflow.pk])
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert 'id="run-form-fields"' in page
    for name in ("amount", "note", "urgent", "currency"):
        assert f'<label for="id_input__{name}">' in page
    # run_start's own schema check speaks for constraints the form does not know (minimum).
    low = client.post(url, {"input_mode": "fields", "input__amount": "0", "input__currency": '"EUR"'})
    assert low.status_code == 400 and "input.amount" in low.content.decode()
    missing = client.post(url, {"input_mode": "fields", "input__amount": "", "input__currency": '"EUR"'})
    assert missing.status_code == 400 and missing.context["input_form"].errors["input__amount"]
    response = client.post(
        url, {"input_mode": "fields", "input__amount": "12", "input__currency": '"USD"', "input__urgent": "on"}
    )
    assert response.status_code == 302
    assert Run.objects.get().input == {"amount": 12, "currency": "USD", "urgent": True}


def test_static_files_the_pages_load_are_served(client: Client) -> None:
    # Everything comes from our own static files: no CDN.
    for path in ("/static/django_htmx/htmx-2.min.js", "/static/flownova/live.js", "/static/flownova/flownova.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        body = response.getvalue()  # the whole body, streamed (a file) or not
        assert len(body) > 1000, path


def test_run_starts_from_the_pages_share_the_apis_rate_limit(client: Client, alice: User) -> None:
    workflow = make_workflow(alice, graph=linear_graph())
    client.force_login(alice)
    url = reverse("workflow_detail", args=[workflow.pk])
    with override_settings(FLOWNOVA_RUN_START_RATE="2/min"):
        assert [client.post(url, {"input_mode": "json", "input_json": "{}"}).status_code for _ in range(2)] == [
            302,
            302,
        ]
        refused = client.post(url, {"input_mode": "json", "input_json": "{}"})
        assert refused.status_code == 429
        assert "You have started too many runs just now: try again in" in refused.content.decode()
        # Run again and resume count against the same allowance, and say so instead of starting a run.
        first = Run.objects.filter(workflow=workflow).first()
        assert first is not None
        again = client.post(reverse("run_rerun", args=[first.pk]), {"version": "same"}, follow=True)
        assert "You have started too many runs just now" in again.content.decode()
        resumed = client.post(reverse("run_resume", args=[first.pk]), {"node_id": "end", "version": "same"})
        assert resumed.status_code == 429
        assert "You have started too many runs just now" in resumed.content.decode()
    assert Run.objects.filter(workflow=workflow).count() == 2


def test_duplicating_a_workflow_whose_sub_workflow_was_deleted_says_why_and_copies_nothing(
    client: Client, alice: User
) -> None:
    child = make_workflow(alice, name="Child")
    parent = make_workflow(alice, name="Parent", graph=linear_graph(("sub", "subworkflow", {"workflow": child.pk})))
    workflow_soft_delete(workflow=child)
    client.force_login(alice)
    response = client.post(reverse("workflow_duplicate", args=[parent.pk]), follow=True)
    assert response.status_code == 200
    assert "cannot be duplicated as yours" in response.content.decode()
    assert not Workflow.objects.filter(name="Parent (copy)").exists()

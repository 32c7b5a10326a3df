"""The OpenAPI schema: served, valid, accurate; and a schemathesis fuzz pass over it, in-process (WSGI), that
must find no 500 and no answer that breaks the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from approvals.models import ApprovalRequest
from runs.models import LedgerEntry, NodeRun
from tests.api.conftest import approval_graph
from tests.factories import make_run, make_workflow

pytestmark = pytest.mark.django_db

FUZZ_EXAMPLES = 25


@pytest.fixture
def openapi() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200  # public: the docs are readable before one has a token
    return response.json()


def test_the_schema_is_valid_openapi_3(openapi: dict[str, Any]) -> None:
    validate_schema(openapi)
    assert openapi["openapi"].startswith("3.")
    contract = {
        "/api/auth/token/": {"post"},
        "/api/workflows/": {"get", "post"},
        "/api/workflows/{id}/": {"get", "put", "patch", "delete"},
        "/api/workflows/{id}/runs/": {"post"},
        "/api/runs/": {"get"},
        "/api/runs/{id}/": {"get"},
        "/api/runs/{id}/ledger/": {"get"},
        "/api/runs/{id}/cancel/": {"post"},
        "/api/approvals/": {"get"},
        "/api/approvals/{id}/decide/": {"post"},
    }
    for path, methods in contract.items():
        assert methods <= set(openapi["paths"][path]), path


def test_the_schema_describes_bodies_and_errors(openapi: dict[str, Any]) -> None:
    paths, schemas = openapi["paths"], openapi["components"]["schemas"]
    graph = schemas["WorkflowRequest"]["properties"]["graph"]
    assert graph["type"] == "object" and graph["required"] == ["nodes"]
    assert graph["properties"]["nodes"]["items"]["required"] == ["id", "type"]
    assert graph["properties"]["edges"]["items"]["required"] == ["source", "target"]
    # writable only (`message` is the new version's)
    assert set(schemas["WorkflowRequest"]["properties"]) == {"name", "description", "graph", "project", "message"}
    assert set(schemas["Run"]["required"]) >= {"id", "workflow", "status", "input", "output", "error"}
    create = paths["/api/workflows/"]["post"]["responses"]
    issue = create["400"]["content"]["application/json"]["schema"]["properties"]["graph"]["items"]
    assert set(issue["properties"]) == {"message", "node_id", "edge_id", "field"}
    start = paths["/api/workflows/{id}/runs/"]["post"]["responses"]
    assert {"201", "400", "401", "404", "413", "415", "429"} <= set(start)
    assert {"200", "403", "404", "409"} <= set(paths["/api/approvals/{id}/decide/"]["post"]["responses"])
    assert "409" in paths["/api/runs/{id}/cancel/"]["post"]["responses"]
    token = paths["/api/auth/token/"]["post"]
    assert "security" not in token and "401" not in token["responses"]
    assert schemas["Error"]["required"] == ["detail"]


def test_the_docs_pages_are_served() -> None:
    client = APIClient()
    for path in ("/api/docs/", "/api/docs/redoc/"):
        response = client.get(path)
        assert response.status_code == 200
        assert b"/api/schema/" in response.content


# --- fuzzing ------------------------------------------------------------------------------------------------


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """Requests go to the WSGI application in this thread, inside the test's transaction: keep Django from
    closing that connection at each request's start and end (its test client does the same)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(alice: User, mallory: User) -> tuple[str, dict[str, int]]:
    """Alice's token, and one of each of her objects for the fuzzer to aim at (mallory's to be refused)."""
    workflow = make_workflow(alice, graph=approval_graph())
    run = make_run(workflow, status="waiting", input={"order": 1}, last_ledger_seq=1)
    NodeRun.objects.create(run=run, node_id="ask", node_type="user_approval", status="waiting", input={})
    LedgerEntry.objects.create(run=run, seq=1, node_id="start", node_type="start", status="succeeded")
    approval = ApprovalRequest.objects.create(run=run, node_id="ask", message="Ship 1?")
    done = make_run(workflow, status="succeeded", output={}, finished_at=timezone.now())
    make_workflow(mallory)
    ids = {"workflows": workflow.pk, "runs": run.pk, "approvals": approval.pk, "finished_run": done.pk}
    return Token.objects.create(user=alice).key, ids


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


def test_fuzzing_the_schema_finds_no_server_error_and_no_schema_violation(
    in_process_requests: None, fuzz_world: tuple[str, dict[str, int]]
) -> None:
    """Every operation, with valid (positive) and invalid (negative) requests generated from the schema;
    valid ids aim at alice's real objects. Deterministic: the same cases on every run."""
    token, ids = fuzz_world
    # `test` calls the tool's URL: no outbound traffic from the test suite.
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application()).exclude(
        operation_id="tools_test_create"
    )
    failures: list[str] = []
    results = list(schema.get_all_operations())
    assert not [result.err() for result in results if isinstance(result, Err)]
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert {"POST /api/workflows/{id}/runs/", "POST /api/approvals/{id}/decide/"} <= {op.label for op in operations}
    for operation in operations:
        resource = operation.path.split("/")[2]
        aimed = {"id": ids[resource]} if "{id}" in operation.path and resource in ids else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, path_parameters=aimed if mode.is_positive else None)

            @given(case=strategy)
            @settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate],  # shrinking costs time; the failure report shows the request
            )
            def fuzz(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)

            try:
                fuzz()
            except Unsatisfiable:
                # Nothing in the schema to break: a path parameter typed as any string can't be made invalid.
                continue
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every operation's failures
                failures.append(f"{operation.label} ({mode.value}):\n{exc}")
    assert not failures, "\n\n".join(failures)


def test_the_docs_pages_load_their_assets_from_our_own_static_files(client: Client) -> None:
    import re

    for path in ("/api/docs/", "/api/docs/redoc/"):
        html = client.get(path).content.decode()
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png|svg))"', html)
        assets += re.findall(r'"(https?://[^"]+)"', html)
        assert assets, path
        assert all(asset.startswith("/static/") for asset in assets), (path, assets)

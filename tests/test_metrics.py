"""/metrics: protected, and fed by every process (a worker pool's counters are read by the web process)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for


def samples(client: Client, **headers: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_need_a_token_or_a_staff_login(client: Client, alice: User, superuser: User) -> None:
    assert client.get("/metrics").status_code == 401
    with override_settings(FLOWNOVA_METRICS_TOKEN="s3cret-token"):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    client.force_login(alice)
    assert client.get("/metrics").status_code == 401
    client.force_login(superuser)
    assert client.get("/metrics").status_code == 200


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_metrics_change_as_a_real_run_executes_on_the_worker(
    client: Client, alice: User, superuser: User, celery_worker: WorkerProcess
) -> None:
    client.force_login(superuser)
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "1", "operator": "==", "right": "1"}),
            ("yes", "end", {}),
            ("no", "end", {}),
        ],
        [("start", "check"), ("check", "yes", "true"), ("check", "no", "false")],
    )
    before = samples(client)
    run = wait_for(start(alice, graph))
    assert run.status == "succeeded"
    after = samples(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("flownova_runs_started_total") == 1
    # Counted in the worker's pool processes, read here through the shared multiprocess folder.
    assert grew("flownova_runs_finished_total", status="succeeded") == 1
    assert grew("flownova_node_executions_total", type="if_else", status="succeeded") == 1
    assert grew("flownova_node_duration_seconds_count", type="end") == 1
    assert grew("flownova_queue_wait_seconds_count") == 3  # start, check, yes


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_pending_approvals_are_a_gauge(
    client: Client, alice: User, superuser: User, celery_worker: WorkerProcess
) -> None:
    client.force_login(superuser)
    graph = graph_of(
        [("start", "start", {}), ("ask", "user_approval", {}), ("a", "end", {}), ("b", "end", {})],
        [("start", "ask"), ("ask", "a", "approved"), ("ask", "b", "rejected")],
    )
    base = samples(client)[("flownova_approvals_pending", ())]
    wait_for(start(alice, graph), "waiting")
    assert samples(client)[("flownova_approvals_pending", ())] == base + 1


def test_the_grafana_dashboard_only_queries_metrics_that_exist() -> None:
    import json
    import re

    import yaml

    from flownova import metrics
    from tests.conftest import ROOT

    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/flownova.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bflownova_[a-z_]+", target["expr"])
    }
    from prometheus_client.metrics import MetricWrapperBase

    exported = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                exported.update({family.name, f"{family.name}_total", f"{family.name}_bucket"})
    exported.add("flownova_approvals_pending")
    assert queried and queried <= exported, queried - exported
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["grafana"]["profiles"] == ["observability"]
    yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())

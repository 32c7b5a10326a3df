"""The triggers API: creating, reading, changing, rotating and deleting triggers, scoped to the workflow's
owner, with a 400 naming each field at fault."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from triggers.models import Trigger, TriggerFiring
from triggers.services import secret_digest
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

Api = Callable[..., APIClient]


def triggers_url(workflow: Workflow) -> str:
    return f"/api/workflows/{workflow.pk}/triggers/"


def test_a_webhook_shows_its_url_once(api: Api, alice: User, orders: Workflow) -> None:
    client = api(alice)
    created = client.post(triggers_url(orders), {"type": "webhook", "name": "shop"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["type"] == "webhook" and body["enabled"] is True and body["last_fired_at"] is None
    assert body["url"].startswith("http://testserver/hooks/")
    secret = body["url"].rstrip("/").rsplit("/", 1)[1]
    assert len(secret) >= 43  # 256 bits, url-safe base64
    trigger = Trigger.objects.get(pk=body["id"])
    assert trigger.secret_hash == secret_digest(secret)
    assert secret not in str(Trigger.objects.filter(pk=trigger.pk).values().get())  # only its hash is kept
    again = client.get(f"/api/triggers/{body['id']}/").json()
    assert again["url"] is None
    assert again["url_hint"].startswith(f"http://testserver/hooks/{secret[:6]}")
    assert secret not in again["url_hint"]
    listed = client.get(triggers_url(orders)).json()
    assert [row["id"] for row in listed] == [body["id"]] and listed[0]["url"] is None


def test_rotating_gives_a_new_url_and_the_old_one_stops(api: Api, alice: User, orders: Workflow) -> None:
    client = api(alice)
    first = client.post(triggers_url(orders), {"type": "webhook"}, format="json").json()
    rotated = client.post(f"/api/triggers/{first['id']}/rotate/")
    assert rotated.status_code == 200
    assert rotated.json()["url"] != first["url"]
    old_secret = first["url"].rstrip("/").rsplit("/", 1)[1]
    assert not Trigger.objects.filter(secret_hash=secret_digest(old_secret)).exists()


def test_a_signing_secret_is_write_only(api: Api, alice: User, orders: Workflow) -> None:
    client = api(alice)
    created = client.post(triggers_url(orders), {"type": "webhook", "signing_secret": "s3cr3t-value"}, format="json")
    body = created.json()
    assert body["has_signing_secret"] is True
    assert "s3cr3t-value" not in created.content.decode()
    assert "s3cr3t-value" not in Trigger.objects.get(pk=body["id"]).signing_secret_encrypted
    removed = client.patch(f"/api/triggers/{body['id']}/", {"signing_secret": ""}, format="json").json()
    assert removed["has_signing_secret"] is False


def test_a_schedule_shows_its_next_fire_times(api: Api, alice: User, orders: Workflow) -> None:
    created = api(alice).post(
        triggers_url(orders),
        {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "input": {"order": 1}},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    times = [datetime.fromisoformat(moment) for moment in body["next_fire_times"]]
    assert len(times) == 5 and times == sorted(times)
    assert body["next_fire_at"] is not None and datetime.fromisoformat(body["next_fire_at"]) == times[0]
    assert all(moment.weekday() < 5 for moment in times)
    assert body["overlap"] == "skip" and body["catch_up"] is True
    assert "09:00" in body["description"] and "Europe/Paris" in body["description"]
    assert body["url"] is None and body["url_hint"] is None


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"type": "schedule", "cron": "61 * * * *", "input": {"order": 1}}, "cron", "not a valid cron"),
        ({"type": "schedule", "cron": "* * *", "input": {"order": 1}}, "cron", "five fields"),
        ({"type": "schedule", "input": {"order": 1}}, "cron", "needs"),
        ({"type": "schedule", "every_seconds": 0, "input": {"order": 1}}, "every_seconds", "greater than or equal"),
        (
            {"type": "schedule", "cron": "* * * * *", "timezone": "Nowhere/Land", "input": {"order": 1}},
            "timezone",
            "not a timezone",
        ),
        ({"type": "schedule", "every_seconds": 5, "input": {"order": "x"}}, "input", "input.order"),
        ({"type": "schedule", "every_seconds": 5}, "input", "'order' is a required property"),
        ({"type": "schedule", "every_seconds": 5, "input": [1]}, "input", "JSON object"),
        ({"type": "schedule", "every_seconds": 5, "input": {"order": 1}, "overlap": "often"}, "overlap", "valid"),
        ({"type": "webhook", "cron": "* * * * *"}, "cron", "only schedules"),
        (
            {"type": "schedule", "every_seconds": 5, "input": {"order": 1}, "signing_secret": "x"},
            "signing_secret",
            "only webhooks",
        ),
        ({"type": "webhook", "rate_limit": "lots"}, "rate_limit", "not a rate"),
        ({"type": "carrier-pigeon"}, "type", "valid choice"),
        ({"type": "webhook", "colour": "red"}, "colour", ""),
    ],
)
def test_a_bad_trigger_is_a_400_naming_the_field(
    api: Api, alice: User, orders: Workflow, payload: dict[str, object], field: str, words: str
) -> None:
    response = api(alice).post(triggers_url(orders), payload, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert field in body, body
    assert words in str(body[field])
    assert not Trigger.objects.exists()


def test_changing_a_schedule_moves_its_next_tick(api: Api, alice: User, orders: Workflow) -> None:
    client = api(alice)
    body = client.post(
        triggers_url(orders), {"type": "schedule", "cron": "0 0 1 1 *", "input": {"order": 1}}, format="json"
    ).json()
    changed = client.patch(f"/api/triggers/{body['id']}/", {"every_seconds": 60}, format="json")
    assert changed.status_code == 200, changed.json()
    after = changed.json()
    assert after["cron"] == "" and after["every_seconds"] == 60
    assert after["next_fire_at"] < body["next_fire_at"]
    disabled = client.patch(f"/api/triggers/{body['id']}/", {"enabled": False}, format="json").json()
    assert disabled["next_fire_at"] is None
    enabled = client.patch(f"/api/triggers/{body['id']}/", {"enabled": True}, format="json").json()
    assert enabled["next_fire_at"] is not None
    assert client.patch(f"/api/triggers/{body['id']}/", {"type": "webhook"}, format="json").status_code == 400


def test_triggers_are_their_owners(api: Api, alice: User, mallory: User, orders: Workflow) -> None:
    trigger = api(alice).post(triggers_url(orders), {"type": "webhook"}, format="json").json()
    intruder = api(mallory)
    assert intruder.get(triggers_url(orders)).status_code == 404
    assert intruder.post(triggers_url(orders), {"type": "webhook"}, format="json").status_code == 404
    for method, path in [
        ("get", f"/api/triggers/{trigger['id']}/"),
        ("patch", f"/api/triggers/{trigger['id']}/"),
        ("delete", f"/api/triggers/{trigger['id']}/"),
        ("post", f"/api/triggers/{trigger['id']}/rotate/"),
        ("get", f"/api/triggers/{trigger['id']}/firings/"),
    ]:
        assert getattr(intruder, method)(path, {}, format="json").status_code == 404, (method, path)
    assert intruder.get("/api/triggers/").json()["results"] == []
    assert api().get(f"/api/triggers/{trigger['id']}/").status_code in (401, 403)
    assert Trigger.objects.filter(pk=trigger["id"]).exists()


def test_deleting_a_trigger(api: Api, alice: User, orders: Workflow) -> None:
    client = api(alice)
    trigger = client.post(triggers_url(orders), {"type": "webhook"}, format="json").json()
    assert client.delete(f"/api/triggers/{trigger['id']}/").status_code == 204
    assert client.get(f"/api/triggers/{trigger['id']}/").status_code == 404
    assert not TriggerFiring.objects.exists()


def test_a_deleted_workflows_triggers_are_gone(api: Api, alice: User, orders: Workflow) -> None:
    client = api(alice)
    trigger = client.post(triggers_url(orders), {"type": "webhook"}, format="json").json()
    assert client.delete(f"/api/workflows/{orders.pk}/").status_code == 204
    assert client.get(f"/api/triggers/{trigger['id']}/").status_code == 404
    assert client.get(triggers_url(orders)).status_code == 404


def test_a_schedule_whose_workflow_changed_under_it_can_still_be_disabled(
    api: Api, alice: User, orders: Workflow
) -> None:
    client = api(alice)
    body = client.post(
        triggers_url(orders), {"type": "schedule", "every_seconds": 60, "input": {"order": 1}}, format="json"
    ).json()
    Trigger.objects.filter(pk=body["id"]).update(input={"order": "not a number"})
    disabled = client.patch(f"/api/triggers/{body['id']}/", {"enabled": False}, format="json")
    assert disabled.status_code == 200, disabled.json()
    assert disabled.json()["enabled"] is False and disabled.json()["next_fire_at"] is None
    enabled = client.patch(f"/api/triggers/{body['id']}/", {"enabled": True}, format="json")
    assert enabled.status_code == 400
    assert "input.order" in str(enabled.json()["input"])


@pytest.mark.parametrize("path", ["/api/workflows/abc/triggers/", "/api/workflows/%C2%91D/triggers/"])
def test_a_workflow_id_that_is_not_a_number_is_a_404(api: Api, alice: User, path: str) -> None:
    assert api(alice).get(path).status_code == 404
    assert api(alice).post(path, {"type": "webhook"}, format="json").status_code == 404

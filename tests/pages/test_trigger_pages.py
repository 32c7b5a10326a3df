"""A workflow's triggers on its page and in the admin: the section lists them with their schedules and
history; adding a webhook shows its URL once; bad input is a 400 with the message next to its field and
nothing saved; the preview explains a cron expression as it is typed; enabling, rotating and deleting are POSTs
with CSRF; another user gets a 404 everywhere. Personas: alice owns the workflow, mallory must not see it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_run, make_workflow
from triggers.models import Trigger, TriggerFiring, TriggerType
from triggers.services import secret_digest, trigger_create
from triggers.signing import sign
from workflows.models import Workflow
from workflows.services import workflow_soft_delete, workflow_update

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

pytestmark = pytest.mark.django_db

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "workflow-triggers"}
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"order": {"type": "integer", "minimum": 1}, "note": {"type": "string"}},
    "required": ["order"],
}


def order_graph(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start", "data": {"input_schema": schema or ORDER_SCHEMA}},
            {"id": "end", "type": "end", "data": {}},
        ],
        "edges": [{"id": "e1", "source": "start", "target": "end"}],
    }


@pytest.fixture
def orders(alice: User) -> Workflow:
    return make_workflow(alice, name="Orders", graph=order_graph())


def section_url(workflow: Workflow) -> str:
    return reverse("workflow_triggers", args=[workflow.pk])


def add_webhook(workflow: Workflow, *, name: str = "", signing_secret: str | None = None) -> tuple[Trigger, str]:
    trigger = Trigger(workflow=workflow, type=TriggerType.WEBHOOK, name=name)
    secret = trigger_create(trigger, signing_secret=signing_secret)
    assert secret is not None
    return trigger, secret


def add_schedule(workflow: Workflow, **fields: Any) -> Trigger:
    fields.setdefault("cron", "0 9 * * 1-5")
    fields.setdefault("input", {"order": 1})
    trigger = Trigger(workflow=workflow, type=TriggerType.SCHEDULE, **fields)
    trigger_create(trigger)
    return trigger


def schedule_post(**fields: Any) -> dict[str, Any]:
    return {
        "type": "schedule",
        "name": "",
        "kind": "cron",
        "cron": "*/5 * * * *",
        "every_seconds": "",
        "timezone": "UTC",
        "input": '{"order": 2}',
        "overlap": "skip",
        "catch_up": "on",
        **fields,
    }


def field_block(html: str, field_id: str) -> str:
    """The `<div class="field">` holding the input with this id: where its errors are shown."""
    for block in re.findall(r'<div class="field[^"]*">.*?</div>', html, flags=re.S):
        if f'id="{field_id}"' in block:
            return block
    raise AssertionError(f"no field {field_id} in the page")


def text(response: _MonkeyPatchedWSGIResponse) -> str:
    return response.content.decode()


def test_the_section_lists_each_trigger_with_its_schedule_and_history(
    client: Client, alice: User, orders: Workflow
) -> None:
    webhook, secret = add_webhook(orders, name="shop", signing_secret="shh-its-a-secret")
    schedule = add_schedule(orders, name="mornings", timezone="Europe/Paris", overlap="queue")
    every = add_schedule(orders, cron="", every_seconds=90, enabled=False)
    run = make_run(orders)
    TriggerFiring.objects.create(trigger=schedule, fired_at=timezone.now(), outcome="started", run=run)
    TriggerFiring.objects.create(
        trigger=schedule,
        fired_at=timezone.now() - timedelta(minutes=5),
        outcome="skipped",
        reason="run 1 from the previous tick is still running",
        missed=2,
    )
    client.force_login(alice)

    # The workflow page loads the section with htmx, and links to it for browsers without JavaScript.
    page = text(client.get(reverse("workflow_detail", args=[orders.pk])))
    assert f'hx-get="{section_url(orders)}" hx-trigger="load"' in page
    assert f'<a href="{section_url(orders)}">' in page

    response = client.get(section_url(orders), **HTMX)
    assert response.status_code == 200
    html = text(response)
    assert html.startswith('<section id="workflow-triggers"') and "<html" not in html
    # The webhook: its hint only, and whether it is signed.
    assert f"http://testserver/hooks/{secret[:6]}…/" in html and secret not in html
    webhook_block = html.split(f'id="trigger-{webhook.pk}"')[1].split("</article>")[0]
    assert "<dt>Signed</dt><dd>yes</dd>" in webhook_block and "shh-its-a-secret" not in html
    # The schedule: its cron in words, timezone, overlap, and five fire times in its timezone with the offset.
    block = html.split(f'id="trigger-{schedule.pk}"')[1].split("</article>")[0]
    assert "At 09:00 on Monday through Friday (Europe/Paris)" in block
    assert "Start it when the active run ends" in block
    times = re.findall(r'<li><time datetime="([^"]+)">([^<]+)</time></li>', block)
    assert len(times) == 5
    assert all(
        " 09:00:00 (" in shown and ("CET, UTC+01:00" in shown or "CEST, UTC+02:00" in shown) for _, shown in times
    )
    # Its recent firings, newest first, with the run they started.
    assert block.index("status-started") < block.index("status-skipped")
    assert f'<a href="{reverse("run_detail", args=[run.pk])}">Run #{run.pk}</a>' in block
    assert "still running" in block and "2 missed ticks not replayed" in block
    # A disabled period.
    every_block = html.split(f'id="trigger-{every.pk}"')[1].split("</article>")[0]
    assert "Every 90 seconds" in every_block and "disabled" in every_block and ">Enable<" in every_block

    # Without htmx, the same section in a page of its own.
    full = text(client.get(section_url(orders)))
    assert full.startswith("<!doctype html>") and 'id="workflow-triggers"' in full and "Triggers of Orders" in full


def test_adding_a_webhook_shows_its_url_once(client: Client, alice: User, orders: Workflow) -> None:
    client.force_login(alice)
    response = client.post(section_url(orders), {"type": "webhook", "name": "shop", "rate_limit": "30/min"}, **HTMX)
    assert response.status_code == 201 and "no-store" in response["Cache-Control"]
    html = text(response)
    trigger = Trigger.objects.get(workflow=orders)
    assert (trigger.name, trigger.rate_limit, trigger.has_signing_secret) == ("shop", "30/min", False)
    url = re.search(r'<code class="copy-text" id="trigger-url">([^<]+)</code>', html)
    assert url is not None
    secret = url.group(1).rstrip("/").rsplit("/", 1)[1]
    assert trigger.secret_hash == secret_digest(secret)
    assert 'data-copy="trigger-url"' in html and "it will not be shown again" in html
    # The curl example posts the sample input built from the start node's schema.
    assert (
        f"curl -X POST {url.group(1)} -H &#x27;Content-Type: application/json&#x27; "
        "-d &#x27;{&quot;order&quot;: 1, &quot;note&quot;: &quot;example&quot;}&#x27;"
    ) in html
    assert 'id="trigger-signed"' not in html  # not signed: no signature example

    # Shown once: the section never holds it again, only its hint.
    again = text(client.get(section_url(orders), **HTMX))
    assert secret not in again and f"/hooks/{secret[:6]}…/" in again


def test_a_signed_webhooks_example_computes_the_signature_the_server_checks(
    client: Client, alice: User, orders: Workflow
) -> None:
    client.force_login(alice)
    response = client.post(section_url(orders), {"type": "webhook", "signing_secret": "open-sesame"}, **HTMX)
    assert response.status_code == 201
    assert "open-sesame" not in text(response)
    assert Trigger.objects.get(workflow=orders).has_signing_secret
    example: str = response.context["revealed"].signed_example
    assert "X-FlowNova-Timestamp: $ts" in example and "X-FlowNova-Signature: sha256=$sig" in example
    # Run the example's shell lines (all but the call itself) with a secret and a fixed time.
    script = example.split("\ncurl ")[0].replace("SECRET='the signing secret you set'", "SECRET='open-sesame'")
    script = script.replace("ts=$(date +%s)", "ts=1700000000")
    out = subprocess.run(["bash", "-c", f'{script}\nprintf "%s\\n%s" "$body" "$sig"'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    body, digest = out.stdout.split("\n")
    assert body == '{"order": 1, "note": "example"}'
    assert f"sha256={digest}" == sign("open-sesame", body.encode(), 1700000000)


def test_a_schedule_with_a_bad_cron_is_refused_next_to_the_field(client: Client, alice: User, orders: Workflow) -> None:
    client.force_login(alice)
    response = client.post(section_url(orders), schedule_post(cron="61 * * * *"), **HTMX)
    assert response.status_code == 400
    html = text(response)
    assert "is not a valid cron expression" in field_block(html, "id_schedule_cron")
    assert '<details class="trigger-add" open>\n    <summary>Add a schedule' in html
    assert not Trigger.objects.exists()

    four_fields = text(client.post(section_url(orders), schedule_post(cron="* * * *"), **HTMX))
    assert "has 4" in field_block(four_fields, "id_schedule_cron")
    missing = client.post(section_url(orders), schedule_post(cron=""), **HTMX)
    assert missing.status_code == 400 and "Give a cron expression" in field_block(text(missing), "id_schedule_cron")
    zone = text(client.post(section_url(orders), schedule_post(timezone="Mars/Olympus"), **HTMX))
    assert "is not a timezone name" in field_block(zone, "id_schedule_timezone")
    period = text(client.post(section_url(orders), schedule_post(kind="every", every_seconds="0"), **HTMX))
    assert "greater than or equal to 1" in field_block(period, "id_schedule_every_seconds")
    wrong_kind = client.post(section_url(orders), schedule_post(kind="hourly"), **HTMX)
    assert wrong_kind.status_code == 400
    no_type = client.post(section_url(orders), {"type": "carrier-pigeon"}, **HTMX)
    assert no_type.status_code == 400 and "type must be “webhook” or “schedule”" in text(no_type)
    # Without JavaScript: the same form, in the page, with the same status.
    plain = client.post(section_url(orders), schedule_post(cron="61 * * * *"))
    assert plain.status_code == 400 and "is not a valid cron expression" in text(plain)
    assert not Trigger.objects.exists()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ('{"order": 2', "The input is not valid JSON: Expecting"),
        ('{"order": NaN}', "NaN is not valid JSON"),
        ('{"order": 1, "note": "a\\u0000b"}', "note: text may not contain NUL characters"),
        ("[1, 2]", "must be a JSON object, not list"),
        ('{"order": "two"}', "order"),
        ("{}", "order"),
    ],
)
def test_a_schedules_input_must_be_json_that_fits_the_workflow(
    client: Client, alice: User, orders: Workflow, typed: str, expected: str
) -> None:
    client.force_login(alice)
    response = client.post(section_url(orders), schedule_post(input=typed), **HTMX)
    assert response.status_code == 400
    assert expected in field_block(text(response), "id_schedule_input")
    assert not Trigger.objects.exists()


def test_adding_a_schedule(client: Client, alice: User, orders: Workflow) -> None:
    client.force_login(alice)
    # The form starts with the sample input, and no preview yet.
    form = text(client.get(section_url(orders), **HTMX))
    assert "{\n  &quot;order&quot;: 1,\n  &quot;note&quot;: &quot;example&quot;\n}</textarea>" in form
    assert "Type a cron expression to see when it would fire." in form
    assert '<option value="Europe/Paris">' in form and 'list="trigger-timezones"' in form

    response = client.post(
        section_url(orders),
        schedule_post(name="nightly", cron="30 2 * * *", timezone="Asia/Tokyo", overlap="allow", catch_up=""),
        **HTMX,
    )
    assert response.status_code == 201
    trigger = Trigger.objects.get(workflow=orders)
    assert (trigger.cron, trigger.every_seconds, trigger.timezone, trigger.overlap, trigger.catch_up) == (
        "30 2 * * *",
        None,
        "Asia/Tokyo",
        "allow",
        False,
    )
    assert trigger.input == {"order": 2} and trigger.next_fire_at is not None
    assert "Added “nightly”: at 02:30 every day (Asia/Tokyo)." in text(response)

    period = client.post(section_url(orders), schedule_post(kind="every", every_seconds="3600", cron="ignored"), **HTMX)
    assert period.status_code == 201
    added = Trigger.objects.exclude(pk=trigger.pk).get()
    assert (added.cron, added.every_seconds) == ("", 3600)

    # Without JavaScript a schedule (which reveals nothing) is added, then the page is shown again by redirect.
    plain = client.post(section_url(orders), schedule_post(cron="0 * * * *"))
    assert plain.status_code == 302 and plain["Location"] == section_url(orders)
    assert "Added a schedule: at the start of every hour." in text(client.get(section_url(orders)))


def test_the_preview_explains_a_cron_expression_and_its_next_five_times(
    client: Client, alice: User, orders: Workflow
) -> None:
    client.force_login(alice)
    url = reverse("trigger_preview", args=[orders.pk])
    response = client.get(url, {"kind": "cron", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}, **HTMX)
    assert response.status_code == 200
    html = text(response)
    assert "At 09:00 on Monday through Friday (America/New_York)" in html
    times = re.findall(r"<li><time datetime=\"[^\"]+\">([^<]+)</time></li>", html)
    assert len(times) == 5 and all(" 09:00:00 (E" in moment for moment in times)  # EST or EDT, with the offset

    every = text(client.get(url, {"kind": "every", "every_seconds": "300"}))
    assert "Every 5 minutes" in every and every.count("<li>") == 5
    assert "Every 2 minutes" in text(client.get(url, {"every_seconds": "120"}))  # the kind follows the field given

    bad = client.get(url, {"cron": "0 25 * * *"})
    assert bad.status_code == 400 and "<strong>cron</strong>: &#x27;0 25 * * *&#x27; is not a valid" in text(bad)
    zone = client.get(url, {"cron": "0 9 * * *", "timezone": "Nowhere/Town"})
    assert zone.status_code == 400 and "<strong>timezone</strong>" in text(zone)
    for seconds in ("soon", "0", str(400 * 86400)):
        period = client.get(url, {"kind": "every", "every_seconds": seconds})
        assert period.status_code == 400 and "<strong>every_seconds</strong>" in text(period)
    empty = client.get(url, {"cron": ""})
    assert empty.status_code == 200 and "Type a cron expression" in text(empty)
    assert client.post(url, {"cron": "* * * * *"}).status_code == 405


def test_enabling_disabling_rotating_and_deleting(client: Client, alice: User, orders: Workflow) -> None:
    webhook, secret = add_webhook(orders, name="shop")
    schedule = add_schedule(orders)
    client.force_login(alice)
    toggle = reverse("trigger_toggle", args=[orders.pk, schedule.pk])

    assert client.get(toggle).status_code == 405
    off = client.post(toggle, {"enabled": "false"}, **HTMX)
    assert off.status_code == 200 and "Disabled the schedule." in text(off)
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_fire_at) == (False, None)
    again = client.post(toggle, {"enabled": "false"}, **HTMX)  # said, not flipped: a double click stays off
    assert again.status_code == 200
    schedule.refresh_from_db()
    assert not schedule.enabled
    assert client.post(toggle, {"enabled": "maybe"}, **HTMX).status_code == 400
    on = client.post(toggle, {"enabled": "true"}, **HTMX)
    assert on.status_code == 200 and "Enabled the schedule." in text(on)
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_fire_at is not None

    # Rotating gives the webhook a new URL, shown once; the old one is gone.
    rotate = reverse("trigger_rotate", args=[orders.pk, webhook.pk])
    rotated = client.post(rotate, **HTMX)
    assert rotated.status_code == 200
    html = text(rotated)
    assert "The webhook's new URL (“shop”):" in html and "The previous URL has stopped working." in html
    new_url = re.search(r'id="trigger-url">([^<]+)<', html)
    assert new_url is not None and secret not in html
    webhook.refresh_from_db()
    assert webhook.secret_hash == secret_digest(new_url.group(1).rstrip("/").rsplit("/", 1)[1])
    assert client.post(reverse("trigger_rotate", args=[orders.pk, schedule.pk]), **HTMX).status_code == 400

    # Deleting: a GET only asks (the way without JavaScript), a POST deletes.
    delete = reverse("trigger_delete", args=[orders.pk, webhook.pk])
    ask = client.get(delete)
    assert ask.status_code == 200 and "Delete the webhook “shop”?" in text(ask)
    assert Trigger.objects.filter(pk=webhook.pk).exists()
    deleted = client.post(delete, **HTMX)
    assert deleted.status_code == 200 and "Deleted “shop” and its history." in text(deleted)
    assert not Trigger.objects.filter(pk=webhook.pk).exists()

    # Without JavaScript each answers with a redirect to the triggers page, which shows what happened.
    plain = client.post(toggle, {"enabled": "false"})
    assert plain.status_code == 302 and plain["Location"] == section_url(orders)
    assert "Disabled the schedule." in text(client.get(section_url(orders)))


def test_a_schedule_whose_input_no_longer_fits_can_be_disabled_but_not_enabled(
    client: Client, alice: User, orders: Workflow
) -> None:
    schedule = add_schedule(orders, input={"order": 1})
    stricter = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "sku": {"type": "string"}}}
    workflow_update(workflow=orders, graph=order_graph({**stricter, "required": ["order", "sku"]}))
    client.force_login(alice)
    toggle = reverse("trigger_toggle", args=[orders.pk, schedule.pk])
    assert client.post(toggle, {"enabled": "false"}, **HTMX).status_code == 200
    refused = client.post(toggle, {"enabled": "true"}, **HTMX)
    assert refused.status_code == 400 and "can&#x27;t be enabled: input:" in text(refused)
    schedule.refresh_from_db()
    assert not schedule.enabled


def test_the_actions_need_post_and_csrf(alice: User, orders: Workflow) -> None:
    webhook, _ = add_webhook(orders)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get(section_url(orders), **HTMX)
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else client.cookies["csrftoken"].value
    posts = [
        (section_url(orders), {"type": "webhook"}),
        (reverse("trigger_toggle", args=[orders.pk, webhook.pk]), {"enabled": "false"}),
        (reverse("trigger_rotate", args=[orders.pk, webhook.pk]), {}),
        (reverse("trigger_delete", args=[orders.pk, webhook.pk]), {}),
    ]
    for url, data in posts:
        assert client.post(url, data, **HTMX).status_code == 403, url
    assert Trigger.objects.get(pk=webhook.pk).enabled and Trigger.objects.count() == 1
    # htmx sends the token in a header (base.html's hx-headers).
    assert client.post(posts[1][0], posts[1][1], HTTP_X_CSRFTOKEN=token, **HTMX).status_code == 200
    assert not Trigger.objects.get(pk=webhook.pk).enabled


def test_another_users_workflow_is_a_404_on_every_url(
    client: Client, alice: User, mallory: User, make_user: Callable[..., User], orders: Workflow
) -> None:
    webhook, _ = add_webhook(orders)
    schedule = add_schedule(orders)
    gets = [
        section_url(orders),
        reverse("trigger_preview", args=[orders.pk]) + "?cron=*+*+*+*+*",
        reverse("trigger_delete", args=[orders.pk, webhook.pk]),
    ]
    posts = [
        (section_url(orders), {"type": "webhook"}),
        (section_url(orders), schedule_post()),
        (reverse("trigger_toggle", args=[orders.pk, schedule.pk]), {"enabled": "false"}),
        (reverse("trigger_rotate", args=[orders.pk, webhook.pk]), {}),
        (reverse("trigger_delete", args=[orders.pk, webhook.pk]), {}),
    ]
    client.force_login(mallory)
    for url in gets:
        assert client.get(url).status_code == 404, url
        assert client.get(url, **HTMX).status_code == 404, url
    for url, data in posts:
        assert client.post(url, data, **HTMX).status_code == 404, url
    # A trigger reached through another workflow's URL is a 404 too, even one's own.
    own = make_workflow(mallory, name="Hers")
    assert client.post(reverse("trigger_toggle", args=[own.pk, schedule.pk]), {"enabled": "false"}).status_code == 404
    schedule.refresh_from_db()
    webhook_after = Trigger.objects.get(pk=webhook.pk)
    assert schedule.enabled and webhook_after.secret_hash == webhook.secret_hash
    assert Trigger.objects.filter(workflow=orders).count() == 2

    # Signed out: to the login page.
    client.logout()
    assert client.get(section_url(orders)).status_code == 302

    # Staff see every workflow's triggers.
    client.force_login(make_user("operator", staff=True))
    assert client.get(section_url(orders), **HTMX).status_code == 200

    # A deleted workflow's triggers are gone from the pages.
    client.force_login(alice)
    workflow_soft_delete(workflow=orders)
    assert client.get(section_url(orders)).status_code == 404
    assert (
        client.post(reverse("trigger_toggle", args=[orders.pk, schedule.pk]), {"enabled": "false"}).status_code == 404
    )


# --- the admin -----------------------------------------------------------------------------------------------


def test_the_trigger_admin_pages_render(client: Client, superuser: User, orders: Workflow) -> None:
    webhook, secret = add_webhook(orders, name="shop", signing_secret="admin-never-shows-this")
    schedule = add_schedule(orders, name="mornings")
    firing = TriggerFiring.objects.create(trigger=schedule, fired_at=timezone.now(), outcome="skipped", reason="busy")
    client.force_login(superuser)

    changelist = client.get(reverse("admin:triggers_trigger_changelist"))
    assert changelist.status_code == 200 and changelist.context["cl"].result_count == 2
    assert client.get(reverse("admin:triggers_trigger_changelist"), {"q": "Orders"}).context["cl"].result_count == 2
    assert client.get(reverse("admin:triggers_trigger_changelist"), {"type__exact": "webhook"}).status_code == 200
    assert client.get(reverse("admin:triggers_trigger_add")).status_code == 200

    page = client.get(reverse("admin:triggers_trigger_change", args=[webhook.pk]))
    assert page.status_code == 200
    html = text(page)
    assert f"/hooks/{secret[:6]}…/" in html and secret not in html
    assert str(webhook.secret_hash) not in html and webhook.signing_secret_encrypted not in html
    assert "admin-never-shows-this" not in html and 'name="signing_secret"' in html
    assert 'name="secret_hash"' not in html and 'name="signing_secret_encrypted"' not in html
    schedule_page = text(client.get(reverse("admin:triggers_trigger_change", args=[schedule.pk])))
    assert 'name="cron"' in schedule_page and "Next fire times (UTC)" in schedule_page

    firings = client.get(reverse("admin:triggers_triggerfiring_changelist"), {"outcome__exact": "skipped"})
    assert firings.status_code == 200 and firings.context["cl"].result_count == 1
    assert client.get(reverse("admin:triggers_triggerfiring_change", args=[firing.pk])).status_code == 200
    assert client.get(reverse("admin:triggers_triggerfiring_add")).status_code == 403
    assert client.post(reverse("admin:triggers_triggerfiring_delete", args=[firing.pk])).status_code == 403


def admin_trigger_post(workflow: Workflow, **fields: Any) -> dict[str, Any]:
    return {
        "workflow": workflow.pk,
        "type": "schedule",
        "name": "",
        "enabled": "on",
        "rate_limit": "",
        "cron": "*/10 * * * *",
        "every_seconds": "",
        "timezone": "UTC",
        "input": '{"order": 3}',
        "overlap": "skip",
        "catch_up": "on",
        "signing_secret": "",
        **fields,
    }


def test_the_admin_checks_a_trigger_like_the_api(client: Client, superuser: User, orders: Workflow) -> None:
    client.force_login(superuser)
    add = reverse("admin:triggers_trigger_add")

    bad = client.post(add, admin_trigger_post(orders, cron="*/10 * * *"))
    assert bad.status_code == 200
    form = bad.context["adminform"].form
    assert "has 4" in form.errors["cron"][0]
    assert "has 4" in text(bad)
    for fields, field in [
        ({"timezone": "Atlantis"}, "timezone"),
        ({"input": '{"order": NaN}'}, "input"),
        ({"input": '{"order": "x"}'}, "input"),
        ({"cron": "", "every_seconds": str(400 * 86400)}, "every_seconds"),
        ({"signing_secret": "nope"}, "signing_secret"),
    ]:
        refused = client.post(add, admin_trigger_post(orders, **fields))
        assert refused.status_code == 200 and field in refused.context["adminform"].form.errors, fields
    assert not Trigger.objects.exists()

    created = client.post(add, admin_trigger_post(orders, timezone="Europe/Paris"))
    assert created.status_code == 302
    schedule = Trigger.objects.get()
    assert schedule.input == {"order": 3} and schedule.next_fire_at is not None

    # Changing goes through the same checks; a good change moves the next tick.
    change = reverse("admin:triggers_trigger_change", args=[schedule.pk])
    refused = client.post(change, admin_trigger_post(orders, cron="99 * * * *"))
    assert refused.status_code == 200 and "cron" in refused.context["adminform"].form.errors
    moved = client.post(change, admin_trigger_post(orders, cron="", every_seconds="60"))
    assert moved.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.every_seconds) == ("", 60)
    assert schedule.next_fire_at is not None and schedule.next_fire_at <= timezone.now() + timedelta(seconds=61)


def test_a_webhook_added_in_the_admin_shows_its_url_once(client: Client, superuser: User, orders: Workflow) -> None:
    client.force_login(superuser)
    response = client.post(
        reverse("admin:triggers_trigger_add"),
        admin_trigger_post(orders, type="webhook", cron="", input="{}", signing_secret="from-the-admin"),
        follow=True,
    )
    assert response.status_code == 200
    webhook = Trigger.objects.get()
    assert webhook.type == "webhook" and webhook.has_signing_secret
    shown = [str(message) for message in response.context["messages"]]
    found = [re.search(r"http://testserver/hooks/([\w-]+)/", message) for message in shown]
    urls = [match.group(1) for match in found if match]
    assert len(urls) == 1 and webhook.secret_hash == secret_digest(urls[0])
    assert "from-the-admin" not in "".join(shown)
    # Never again: the change page shows the hint only.
    page = text(client.get(reverse("admin:triggers_trigger_change", args=[webhook.pk])))
    assert urls[0] not in page and f"/hooks/{urls[0][:6]}…/" in page

    refused = client.post(
        reverse("admin:triggers_trigger_add"), admin_trigger_post(orders, type="webhook", rate_limit="lots")
    )
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "is not a rate" in errors["rate_limit"][0] and "cron" in errors  # a webhook has no cron

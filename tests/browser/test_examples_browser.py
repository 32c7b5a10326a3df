"""The examples in a real browser: the run form starts filled in with an example's sample input, so Run is the
first click; and an LLM node's form shows the model it uses when it names none."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from runs.models import Run
from tests.engine_helpers import wait_for
from workflows.demo import examples_load
from workflows.models import Workflow

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_example_runs_from_its_prefilled_form_in_one_click(page: Page, alice: User) -> None:
    examples_load(owner=alice)
    workflow = Workflow.objects.get(owner=alice, name="Order pricing (transform, switch, error path)")
    page.goto(f"/workflows/{workflow.pk}/")
    expect(page.locator("#id_input_json")).to_contain_text('"sku": "DESK-OAK"')
    page.locator("#run-form-json").get_by_role("button", name="Run").click()
    expect(page).to_have_url(f"/runs/{Run.objects.get().pk}/")
    run = wait_for(Run.objects.get())
    assert run.status == "succeeded", run.error
    expect(page.locator("#run-summary .badge").first).to_have_text("succeeded")
    expect(page.locator('.react-flow__node[data-id="tier"] .fn-node')).to_contain_text("succeeded")


def test_an_agent_form_shows_the_default_model_it_uses(page: Page, alice: User) -> None:
    examples_load(owner=alice)
    workflow = Workflow.objects.get(owner=alice, name="Guarded support reply")
    page.goto(f"/workflows/{workflow.pk}/edit/")
    page.locator('.react-flow__node[data-id="draft"]').click()
    model = page.locator("#field-draft-model")
    expect(model).to_have_value("")
    expect(model).to_have_attribute("placeholder", settings.FLOWNOVA_DEFAULT_MODEL)
    expect(page.get_by_text(f"Empty: the default model, {settings.FLOWNOVA_DEFAULT_MODEL}")).to_be_visible()

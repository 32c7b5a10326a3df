"""LLM usage and cost, summed from the ledger (each entry's `llm_usage`), for the runs a user may see."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from django.db.models import Count, F, FloatField, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncDate

from runs.models import LedgerEntry, Run

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.db.models.expressions import Combinable

GROUPS = ("workflow", "model", "day")


def _number(key: str, field: Any) -> Cast:
    return Cast(KeyTextTransform(key, "llm_usage"), field)


def usage_entries(
    *, user: User | AnonymousUser, since: date | None = None, until: date | None = None
) -> QuerySet[LedgerEntry]:
    entries = LedgerEntry.objects.filter(run__in=Run.objects.visible_to(user), llm_usage__isnull=False)
    if since:
        entries = entries.filter(finished_at__date__gte=since)
    if until:
        entries = entries.filter(finished_at__date__lte=until)
    return entries


def usage_summary(
    *, user: User | AnonymousUser, group_by: str, since: date | None = None, until: date | None = None
) -> dict[str, Any]:
    """Tokens and cost per workflow, model or day, and the total. A call LiteLLM could not price (any local
    model) has no cost: its ledger entry is counted in `unpriced_entries`, never as a cost of zero."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    entries = usage_entries(user=user, since=since, until=until)
    sums = {
        "calls": Coalesce(Sum(_number("calls", IntegerField())), Value(0)),
        "prompt_tokens": Coalesce(Sum(_number("prompt_tokens", IntegerField())), Value(0)),
        "completion_tokens": Coalesce(Sum(_number("completion_tokens", IntegerField())), Value(0)),
        "total_tokens": Coalesce(Sum(_number("total_tokens", IntegerField())), Value(0)),
        "cost_usd": Sum(_number("cost_usd", FloatField())),
        "unpriced_entries": Count("pk", filter=Q(llm_usage__cost_usd__isnull=True) | Q(llm_usage__cost_usd=None)),
    }
    groupings: dict[str, dict[str, Combinable]] = {
        "workflow": {"workflow_id": F("run__workflow_id"), "workflow_name": F("run__workflow_name")},
        "model": {"model": KeyTextTransform("model", "llm_usage")},
        "day": {"day": TruncDate("finished_at")},
    }
    keys = groupings[group_by]
    rows = list(entries.annotate(**keys).values(*keys).annotate(**sums).order_by(*keys))
    total = entries.aggregate(**sums)
    for row in [*rows, total]:
        if "day" in row and row["day"] is not None:
            row["day"] = row["day"].isoformat()
        if row["cost_usd"] is not None:
            row["cost_usd"] = round(row["cost_usd"], 6)
    return {"group_by": group_by, "results": rows, "total": total}

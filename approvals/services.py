"""Deciding approval requests. Every way of deciding (admin, inbox page, API) calls `approval_decide`.

Deadlines: a request's timeout action is applied at its deadline by a task sent for that moment (Celery ETA),
and by a periodic scan as the safety net (a message lost with Redis). Both go through `_expire`: the same
conditional update as a person's decision, so exactly one of them (or the person) wins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from approvals.models import ApprovalRequest, ApprovalStatus, Decision, TimeoutAction
from nodes.base import WaitRequest
from projects.audit import AuditAction, actor_label, audit_entry
from projects.models import Membership
from projects.permissions import Action, allowed, grants
from runs.events import ApprovalDecided, ApprovalExpired, ApprovalNeeded
from runs.models import NodeRun, Run
from runs.services import NODE_LOCK_FIELDS, continuing, node_fail_waiting, node_resume
from runs.writes import Transition, run_transition
from runs.writes.sql import from_row, select_sql

logger = logging.getLogger(__name__)

# What sending a task raises when the broker cannot be reached.
BROKER_ERRORS = (KombuOperationalError, RedisConnectionError, OSError)
# A deadline gets its task once it is this close; the periodic scan (every 30 s) sends the task of the ones
# that come this close later. Not sooner: with Redis, a task waiting for its ETA is delivered again after the
# broker's visibility timeout, so a task sent days ahead would be redelivered every hour, each copy held in a
# worker's memory until the deadline.
DEADLINE_TIMER_HORIZON = timedelta(minutes=5)


class ApprovalError(Exception):
    pass


class ApprovalForbidden(ApprovalError):
    """The user may not decide this request (403)."""


class ApprovalAlreadyDecided(ApprovalError):
    """Somebody (or the deadline) decided first (409)."""


def approval_open(*, tx: Transition, node_run: NodeRun, wait: WaitRequest, deadline: datetime | None, **_: Any) -> None:
    """A node waits for a person (the engine's `node_waiting` signal, inside its transition): record the request,
    its assignees and its deadline, and tell the inboxes. A request recorded already (the node's result
    recorded twice) is kept as it is."""
    run = tx.run
    request, created = ApprovalRequest.objects.get_or_create(
        run=run,
        node_id=node_run.node_id,
        defaults={
            "message": wait.message,
            "data": wait.data,
            "allow_self_approval": wait.allow_self_approval,
            "editable_fields": wait.editable_fields,
            "deadline": deadline,
            "timeout_action": wait.timeout_action,
        },
    )
    if created and wait.assignees:
        user_model = get_user_model()
        request.assignee_users.set(user_model.objects.filter(username__in=wait.assignees))
        request.assignee_groups.set(Group.objects.filter(name__in=wait.assignees))
    if created and deadline is not None:
        approval_deadline_schedule(approval=request)  # its timeout action is applied at the deadline
    tx.emit(
        ApprovalNeeded(
            node_id=node_run.node_id,
            approval_id=request.pk,
            message=request.message,
            assignees=wait.assignees,
            deadline=deadline.isoformat() if deadline else None,
        )
    )


def approvals_close(*, tx: Transition, **_: Any) -> None:
    """The run ended (the engine's `run_closing` signal): its pending requests can no longer be decided."""
    ApprovalRequest.objects.filter(run=tx.run, status=ApprovalStatus.PENDING).update(status=ApprovalStatus.CANCELLED)


@dataclass(frozen=True)
class DeciderFacts:
    """What deciding needs to know of one user and one request, read with the request (`approval_for_decider`)
    instead of in queries of their own: a decision is on the path from a person's click to the run going on."""

    role: str | None  # the user's role in the run's project
    has_assignees: bool  # the request names users or groups
    assigned: bool  # the user is named, or in a named group


def approval_for_decider(approval_id: int, user: User) -> tuple[ApprovalRequest, DeciderFacts]:
    """The request (with its run's `DECIDER_RUN_FIELDS`) and what `user` deciding it needs, in one statement
    whose text is built once per process: through the ORM, compiling the query alone took 3-6 ms here."""
    with connection.cursor() as cursor:
        cursor.execute(_decider_sql(), [user.pk, user.pk, user.pk, approval_id])
        row = cursor.fetchone()
    if row is None:
        raise ApprovalRequest.DoesNotExist(f"approval {approval_id} does not exist")
    approval_width = len(_APPROVAL_FIELDS)
    run_width = len(DECIDER_RUN_FIELDS)
    approval: ApprovalRequest = from_row(ApprovalRequest, _APPROVAL_FIELDS, row[:approval_width])
    approval.run = from_row(Run, DECIDER_RUN_FIELDS, row[approval_width : approval_width + run_width])
    role, names_users, names_groups, names_decider, in_named_group = row[approval_width + run_width :]
    facts = DeciderFacts(role=role, has_assignees=names_users or names_groups, assigned=names_decider or in_named_group)
    return approval, facts


# What deciding reads of the request's run (its other fields are deferred).
DECIDER_RUN_FIELDS = ("id", "workflow", "owner", "project", "status")
_APPROVAL_FIELDS = tuple(field.name for field in ApprovalRequest._meta.concrete_fields)


@lru_cache(maxsize=1)
def _decider_sql() -> str:
    # Table and column names come from model metadata; every value is a parameter.
    named = ApprovalRequest.assignee_users.through._meta.db_table
    groups = ApprovalRequest.assignee_groups.through._meta.db_table
    members = User.groups.through._meta.db_table
    return (
        f"SELECT {select_sql(ApprovalRequest, _APPROVAL_FIELDS, 'a')}, {select_sql(Run, DECIDER_RUN_FIELDS, 'r')},"  # noqa: S608
        f" (SELECT m.role FROM {Membership._meta.db_table} m WHERE m.project_id = r.project_id AND m.user_id = %s),"
        f" EXISTS (SELECT 1 FROM {named} u WHERE u.approvalrequest_id = a.id),"
        f" EXISTS (SELECT 1 FROM {groups} g WHERE g.approvalrequest_id = a.id),"
        f" EXISTS (SELECT 1 FROM {named} u WHERE u.approvalrequest_id = a.id AND u.user_id = %s),"
        f" EXISTS (SELECT 1 FROM {groups} g JOIN {members} ug ON ug.group_id = g.group_id"
        f" WHERE g.approvalrequest_id = a.id AND ug.user_id = %s)"
        f" FROM {ApprovalRequest._meta.db_table} a JOIN {Run._meta.db_table} r ON r.id = a.run_id WHERE a.id = %s"
    )


def approval_can_decide(
    *, approval: ApprovalRequest, user: User | AnonymousUser, facts: DeciderFacts | None = None
) -> bool:
    """Staff, a named assignee, a member of an assigned group, or (with no assignee at all) a member of the run's
    project who may run its workflows (`projects.permissions`, Action.RUN). The run's own starter deciding their
    own request needs `allow_self_approval`; an anonymous user, nobody. `facts`: what was read of the request
    and the user with the request itself (`approval_for_decider`); without them, they are queried."""
    if not isinstance(user, User) or not user.is_active:
        return False
    if user.is_staff:
        return True
    if not approval.allow_self_approval and approval.run.owner_id == user.pk:
        return False
    if facts is not None:
        return facts.assigned if facts.has_assignees else grants(facts.role, Action.RUN)
    users = approval.assignee_users.all()
    groups = approval.assignee_groups.all()
    if not users and not groups:
        return allowed(user, Action.RUN, approval.run.project_id)
    return any(u.pk == user.pk for u in users) or user.groups.filter(pk__in=[g.pk for g in groups]).exists()


def approval_decide(
    *,
    approval_id: int,
    user: User,
    decision: str,
    comment: str = "",
    edits: dict[str, Any] | None = None,
) -> ApprovalRequest:
    """Record the decision and resume the run, exactly once: of two concurrent decisions, one wins and the
    other gets ApprovalAlreadyDecided. Raises ApprovalForbidden for someone who may not decide.

    `edits` (with an approval only) changes fields of the data the node passes on; only the fields the node
    declared editable may change, and the change is kept as a diff with who made it."""
    if decision not in Decision.values:
        raise ApprovalError(f"decision must be one of {', '.join(Decision.values)}, not {decision!r}")
    approval, facts = approval_for_decider(approval_id, user)
    if not approval_can_decide(approval=approval, user=user, facts=facts):
        raise ApprovalForbidden(f"{user} may not decide approval {approval_id}")
    _check_edits(approval, decision, edits)
    return _decide(approval, decision=decision, comment=comment, user=user, edits=edits or {})


def _check_edits(approval: ApprovalRequest, decision: str, edits: dict[str, Any] | None) -> None:
    if not edits:
        return
    if not isinstance(edits, dict):
        raise ApprovalError("edits must be an object of field: new value")
    if decision != Decision.APPROVED:
        raise ApprovalError("data can only be edited when approving")
    refused = sorted(set(edits) - set(approval.editable_fields))
    if refused:
        allowed = ", ".join(approval.editable_fields) or "none"
        raise ApprovalError(f"these fields may not be edited: {', '.join(refused)} (editable: {allowed})")


def _decide(
    approval: ApprovalRequest,
    *,
    decision: str,
    comment: str,
    user: User | None,
    edits: dict[str, Any],
    by_timeout: bool = False,
) -> ApprovalRequest:
    # Continuing: the control-flow nodes after the decision are begun here, right after it commits.
    with continuing(approval.run_id, f"decision-{approval.pk}"), _decision_transition(approval) as tx:
        now = timezone.now()
        diff = _edits_diff(approval, edits) if edits else {}
        by = user.get_username() if user is not None else None
        outcome = {
            "status": decision,
            "decision": decision,
            "comment": comment,
            "decided_by": user,
            "decided_at": now,
            "decided_by_timeout": by_timeout,
            "edits": {"by": by, "changes": diff} if diff else None,
        }
        _settle_request(tx, approval, outcome)
        decided = ApprovalDecided(
            node_id=approval.node_id,
            approval_id=approval.pk,
            decision=decision,
            comment=comment,
            decided_by=by,
            decided_at=now.isoformat(),
            decided_by_timeout=by_timeout,
            edits={"by": by, "changes": diff} if diff else None,
        )
        tx.emit(decided)
        _decision_audit(
            tx,
            approval,
            user,
            AuditAction.APPROVAL_DECIDED,
            decision,
            {"decision": decision, "comment": comment, "by_timeout": by_timeout, "edited_fields": sorted(diff)},
        )
        # What the node's output records of the decision: the event's data but for the request's id.
        record = {key: value for key, value in decided.data().items() if key != "approval_id"}
        fields = {**{field: change["to"] for field, change in diff.items()}, "approval": record}
        node_resume(tx, node_id=approval.node_id, fields=fields, handle=decision, replaces="approval")
    return approval


def _decision_audit(
    tx: Transition,
    approval: ApprovalRequest,
    user: User | None,
    action: AuditAction,
    verb: str,
    changes: dict[str, Any],
) -> None:
    """The decision's audit entry, written with the transition's own writes (no round trip of its own)."""
    what = f"approval {approval.pk} (node {approval.node_id!r}) of run {approval.run_id}"
    if user is not None:
        summary = f"{actor_label(user)} {verb} {what}"
    elif verb == "expired":
        summary = f"{what} expired at its deadline"
    else:
        summary = f"{what} was {verb} by its deadline's timeout action"
    entry = audit_entry(
        actor=user,
        action=action,
        obj=approval,
        object_type="approval",
        object_repr=f"{approval.node_id} in run {approval.run_id}",
        project_id=tx.run.project_id,
        summary=summary,
        changes={"run_id": approval.run_id, **changes},
    )
    tx.insert([entry], ids=False)


@contextmanager
def _decision_transition(approval: ApprovalRequest) -> Iterator[Transition]:
    """The run's transition that records a decision (or an expiry). Once it has committed, the decision
    stands: if what the commit sets off then fails (sending the next node's task, publishing events, with
    Redis down), that is logged, not raised, and the caller hears that it was decided. The node is queued in
    the database, so the recovery sweep sends it again, and the events are stored."""
    committed = False

    def mark() -> None:
        nonlocal committed
        committed = True

    try:
        # The waiting node is locked with the run, and the run's unfinished nodes read with them, in the round
        # trip that begins the transaction: settling the run afterwards needs no query of its own.
        # The request's status is read with them too: it changes only under the run's lock, so of two decisions
        # the second to take the lock finds it decided.
        with run_transition(
            approval.run_id,
            node_id=approval.node_id,
            node_fields=NODE_LOCK_FIELDS,
            lock_pending=True,
            read=[(_STATUS_SQL, [approval.pk])],
        ) as tx:
            transaction.on_commit(mark)  # before the decision's own callbacks, so it runs first
            yield tx
    except Exception:
        if not committed:
            raise
        logger.exception("approval %s: decided, but what follows the commit failed", approval.pk)


_STATUS_SQL = f"SELECT status FROM {ApprovalRequest._meta.db_table} WHERE id = %s"  # noqa: S608


def _settle_request(tx: Transition, approval: ApprovalRequest, outcome: dict[str, Any]) -> None:
    """Write `outcome` on a request still pending, with the transition's other writes; raise ApprovalAlreadyDecided
    when it is not. Its status was read with the run's lock (`_decision_transition`), under which alone it
    changes: a decision, an expiry, or the run's end. This picks the winner of concurrent decisions."""
    (rows,) = tx.read_rows
    status = rows[0][0] if rows else "deleted"
    if status != ApprovalStatus.PENDING:
        raise ApprovalAlreadyDecided(f"approval {approval.pk} is already {status}")
    for name, value in outcome.items():
        setattr(approval, name, value)
    tx.save(approval, *outcome)


def _edits_diff(approval: ApprovalRequest, edits: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each edited field that really changes, with its value before and after."""
    node_input = NodeRun.objects.values_list("input", flat=True).get(run_id=approval.run_id, node_id=approval.node_id)
    before = node_input or {}
    return {
        field: {"from": before.get(field), "to": value} for field, value in edits.items() if before.get(field) != value
    }


def approvals_expire_overdue(*, limit: int = 500) -> int:
    """Apply the timeout action of every pending request past its deadline, exactly once each (the same
    conditional update as a person's decision, so a late click gets 409), recording that no person decided.
    Returns how many were applied. One request that cannot be expired is logged and skipped, so that it does
    not hold back the deadlines after it."""
    overdue = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, deadline__lt=timezone.now())
    applied = 0
    for approval in overdue.select_related("run").order_by("deadline")[:limit]:
        assert approval.deadline is not None  # the query asks for one in the past
        try:
            if _expire(approval, approval.deadline):
                applied += 1
        except (OperationalError, InterfaceError):
            raise  # the database is unreachable: nothing else would succeed; the next scan tries again
        except Exception:
            logger.exception("applying the timeout action of approval %s failed", approval.pk)
    return applied


def approval_expire(*, approval_id: int) -> bool:
    """Apply the request's timeout action if it is still pending and its deadline has passed (the task sent for
    the deadline calls this; safe to call twice, or after a decision). Returns whether it was applied."""
    approval = ApprovalRequest.objects.select_related("run").filter(pk=approval_id).first()
    if approval is None or approval.status != ApprovalStatus.PENDING or approval.deadline is None:
        return False
    now = timezone.now()
    if approval.deadline > now:  # early (this clock is behind the one that set it), or the deadline was moved
        if approval.deadline <= now + _horizon():
            _send_timers([(approval.pk, approval.deadline)])
        else:  # the periodic scan sends it when the deadline comes near
            ApprovalRequest.objects.filter(pk=approval.pk).update(deadline_timer_sent=False)
        return False
    return _expire(approval, approval.deadline)


def approval_deadline_schedule(*, approval: ApprovalRequest) -> None:
    """Call inside the transaction that created `approval`: once it commits, a task applies its timeout action
    at its deadline, if that is near (`DEADLINE_TIMER_HORIZON`); the periodic scan sends the others' later."""
    if approval.deadline is None or approval.deadline > timezone.now() + _horizon():
        return
    ApprovalRequest.objects.filter(pk=approval.pk).update(deadline_timer_sent=True)
    timers = [(approval.pk, approval.deadline)]
    transaction.on_commit(lambda: _send_timers(timers))


def approvals_deadlines_schedule(*, limit: int = 500) -> int:
    """Send the task of each pending request whose deadline comes within the horizon and has none yet.
    Returns how many were sent (periodic, with the scan)."""
    with transaction.atomic():
        now = timezone.now()
        # Deadlines already past are the scan's to apply (approvals_expire_overdue), not a task's.
        near = ApprovalRequest.objects.filter(
            status=ApprovalStatus.PENDING, deadline__gte=now, deadline__lte=now + _horizon(), deadline_timer_sent=False
        )
        # skip_locked: a request being decided right now needs no timer, and two scans never send one twice.
        rows = near.select_for_update(skip_locked=True).order_by("deadline").values_list("pk", "deadline")[:limit]
        timers = [(pk, deadline) for pk, deadline in rows if deadline is not None]  # every row: the query says so
        ApprovalRequest.objects.filter(pk__in=[pk for pk, _ in timers]).update(deadline_timer_sent=True)
    return len(timers) if _send_timers(timers) else 0


def _horizon() -> timedelta:
    # Below the broker's visibility timeout, whatever it was set to (see DEADLINE_TIMER_HORIZON).
    return min(DEADLINE_TIMER_HORIZON, timedelta(seconds=settings.CELERY_BROKER_VISIBILITY_TIMEOUT / 2))


def _send_timers(timers: list[tuple[int, datetime]]) -> bool:
    """Send one task per (request, deadline) for the deadline. False when the broker could not be reached:
    that is logged, not raised (this runs after a commit, and the periodic scan applies the deadline anyway,
    up to its period late)."""
    from approvals.tasks import expire_at_deadline  # the tasks module imports this one

    try:
        for approval_id, deadline in timers:
            expire_at_deadline.apply_async((approval_id,), eta=deadline)
    except BROKER_ERRORS as exc:
        logger.error("could not send the deadline task of approvals %s: %s", [pk for pk, _ in timers], exc)
        return False
    return True


def _expire(approval: ApprovalRequest, deadline: datetime) -> bool:
    """Apply the timeout action; False when someone (a person, or the other of timer and scan) decided first."""
    action = approval.timeout_action or TimeoutAction.REJECT
    try:
        if action == TimeoutAction.FAIL:
            _expire_failing(approval, deadline)
        else:
            decision = Decision.APPROVED if action == TimeoutAction.APPROVE else Decision.REJECTED
            comment = f"no decision before the deadline ({deadline.isoformat()}): {action} by timeout"
            _decide(approval, decision=decision, comment=comment, user=None, edits={}, by_timeout=True)
    except ApprovalAlreadyDecided:
        return False
    return True


def _expire_failing(approval: ApprovalRequest, deadline: datetime) -> None:
    with _decision_transition(approval) as tx:
        now = timezone.now()
        outcome = {
            "status": ApprovalStatus.EXPIRED,
            "decided_at": now,
            "decided_by_timeout": True,
            "comment": f"no decision before the deadline ({deadline.isoformat()}): the run fails",
        }
        _settle_request(tx, approval, outcome)
        tx.emit(ApprovalExpired(node_id=approval.node_id, approval_id=approval.pk, decided_at=now.isoformat()))
        _decision_audit(
            tx, approval, None, AuditAction.APPROVAL_EXPIRED, "expired", {"decision": None, "by_timeout": True}
        )
        node_fail_waiting(tx, node_id=approval.node_id, error="nobody decided the approval before its deadline")

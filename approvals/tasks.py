from celery import shared_task
from django.db import InterfaceError, OperationalError

from approvals.services import approval_expire, approvals_deadlines_schedule, approvals_expire_overdue


@shared_task(name="approvals.expire_overdue", ignore_result=True)
def expire_overdue() -> int:
    """Periodic (Celery beat): send the tasks of deadlines coming near, and apply the timeout action of
    approvals past their deadline whose task was lost (Redis keeps nothing on disk)."""
    approvals_deadlines_schedule()
    return approvals_expire_overdue()


@shared_task(
    name="approvals.expire_at_deadline",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
)
def expire_at_deadline(approval_id: int) -> bool:
    """Sent for an approval's deadline: apply its timeout action unless somebody decided first."""
    return approval_expire(approval_id=approval_id)

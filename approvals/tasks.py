from celery import shared_task

from approvals.services import approvals_expire_overdue


@shared_task(name="approvals.expire_overdue", ignore_result=True)
def expire_overdue() -> int:
    """Periodic (Celery beat): apply the timeout action of approvals past their deadline."""
    return approvals_expire_overdue()

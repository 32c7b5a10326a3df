from celery import shared_task

from triggers.services import triggers_prune


@shared_task(name="triggers.prune", ignore_result=True)
def prune() -> tuple[int, int]:
    """Periodic (Celery beat): drop trigger history past its keeping time and expired idempotency keys."""
    return triggers_prune()

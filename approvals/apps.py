from collections.abc import Iterator

from django.apps import AppConfig
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flownova import metrics


class PendingApprovals(Collector):
    """`flownova_approvals_pending`, read from the database at each scrape: a gauge no single process could
    keep right."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from approvals.models import ApprovalRequest, ApprovalStatus  # models load after the app registry

        count = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()
        yield GaugeMetricFamily("flownova_approvals_pending", "Approval requests waiting for a decision", count)


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # The engine asks whoever listens to handle nodes that wait for a person; runs never imports approvals.
        from approvals.services import approval_open, approvals_close
        from runs.signals import node_waiting, run_closing

        node_waiting.connect(approval_open, dispatch_uid="approvals.open")
        run_closing.connect(approvals_close, dispatch_uid="approvals.close")
        metrics.register_scrape_collector("approvals_pending", PendingApprovals())

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # The engine asks whoever listens to handle nodes that wait for a person; runs never imports approvals.
        from approvals.services import approval_open, approvals_close
        from runs.signals import node_waiting, run_closing

        node_waiting.connect(approval_open, dispatch_uid="approvals.open")
        run_closing.connect(approvals_close, dispatch_uid="approvals.close")

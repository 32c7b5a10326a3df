from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        # Deployments (and the test suite) add node types by naming their modules in this setting.
        from importlib import import_module

        from django.conf import settings

        for module in getattr(settings, "FLOWNOVA_NODE_MODULES", []):
            import_module(module)

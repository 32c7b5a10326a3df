from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        # The engine's reliances on library internals apply only to the versions they were checked against.
        from flownova import reliances

        reliances.activate()
        # The registry loads its node types on first use; loading them at start-up makes a module named in
        # FLOWNOVA_NODE_MODULES that does not import stop the process now, not fail its first request.
        import nodes

        nodes.load()

from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # tools cannot import workflows (it sits below); it asks the finders registered with it instead.
        from tools.uses import tool_uses_register
        from workflows.tool_uses import workflows_using_tool

        tool_uses_register(workflows_using_tool)

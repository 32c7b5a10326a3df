"""Which workflows use a tool, so that deleting one they still name is refused (`tool_delete`).

tools sits below the apps whose saved graphs name tools, so it does not ask them: each registers a finder here
from its AppConfig.ready() (workflows does, in workflows/apps.py), and `tool_workflows_using` asks every one.
"""

from __future__ import annotations

from collections.abc import Callable

from tools.models import Tool

# (id, name) of the live workflows of the tool's owner whose saved graph names the tool.
ToolUsesFinder = Callable[[Tool], list[tuple[int, str]]]

_finders: list[ToolUsesFinder] = []


def tool_uses_register(finder: ToolUsesFinder) -> None:
    """Ask `finder` too whenever a tool's users are looked up. Registering the same finder again is a no-op (an
    app's ready() may run more than once, in tests)."""
    if finder not in _finders:
        _finders.append(finder)


def tool_workflows_using(*, tool: Tool) -> list[tuple[int, str]]:
    """(id, name) of the live workflows whose next runs would fail without `tool`, by id, from every registered
    finder. Runs look a tool up by name among the tools of the user who starts them."""
    found: set[tuple[int, str]] = set()
    for finder in _finders:
        found.update(finder(tool))
    return sorted(found)

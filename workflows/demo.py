"""The example workflows in `workflows/examples/`, loaded for a user (the demo user, by `manage.py demo_setup`).

An example file is a workflow document (`{name, description, graph}`, as export writes it) with two additions
that make it loadable into any account, since ids differ from one database to the next:

- `tools`: the HTTP tools its nodes use, as `tool_create` takes them (`name`, `url`, `method`, `description`,
  `parameters`). The user gets each one they have no tool of that name for; a tool of theirs with that name is
  used as it is.
- a `subworkflow`, `map` or `loop` node's `workflow` may be another example's name instead of an id: it becomes
  the id of the user's workflow of that name, so the example it names is loaded first.

Loading is idempotent: an example whose name the user already has a workflow under is left as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from tools.models import Tool
from tools.services import tool_create
from workflows.models import Workflow
from workflows.services import workflow_create

EXAMPLES_DIR = Path(settings.BASE_DIR) / "workflows" / "examples"
# Node data keys that name another workflow (subworkflow, map, loop).
_WORKFLOW_KEY = "workflow"


class ExampleError(ValueError):
    """An example file that cannot be loaded; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Example:
    path: Path
    document: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.document["name"])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.document.get("tools") or [])

    def references(self) -> set[str]:
        """The names of the other examples its nodes run."""
        return {
            node["data"][_WORKFLOW_KEY]
            for node in self.document["graph"].get("nodes", [])
            if isinstance(node.get("data"), dict) and isinstance(node["data"].get(_WORKFLOW_KEY), str)
        }


def examples(directory: Path = EXAMPLES_DIR) -> list[Example]:
    """Every example, each after the examples it runs (else by file name)."""
    found: dict[str, Example] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except ValueError as exc:
            raise ExampleError(f"{path.name} is not JSON: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("name"), str) or "graph" not in document:
            raise ExampleError(f"{path.name} is not a workflow document: it needs a `name` and a `graph`")
        example = Example(path=path, document=document)
        if example.name in found:
            raise ExampleError(f"{path.name} and {found[example.name].path.name} are both named {example.name!r}")
        found[example.name] = example
    ordered: list[Example] = []
    visiting: list[str] = []

    def visit(example: Example) -> None:
        if example in ordered:
            return
        if example.name in visiting:
            raise ExampleError(f"examples run each other in a cycle: {' -> '.join([*visiting, example.name])}")
        visiting.append(example.name)
        for name in sorted(example.references()):
            if name not in found:
                raise ExampleError(f"{example.path.name} runs the example {name!r}, which no file defines")
            visit(found[name])
        visiting.pop()
        ordered.append(example)

    for example in found.values():
        visit(example)
    return ordered


def example_graph(example: Example, *, owner: User) -> dict[str, Any]:
    """The example's graph with the workflows it runs named by the owner's ids."""
    graph: dict[str, Any] = json.loads(json.dumps(example.document["graph"]))
    for node in graph.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get(_WORKFLOW_KEY), str):
            target = Workflow.objects.alive().filter(owner=owner, name=data[_WORKFLOW_KEY]).order_by("pk").first()
            if target is None:
                raise ExampleError(f"{example.path.name}: {owner} has no workflow named {data[_WORKFLOW_KEY]!r}")
            data[_WORKFLOW_KEY] = target.pk
    return graph


@transaction.atomic
def examples_load(*, owner: User, directory: Path = EXAMPLES_DIR) -> list[str]:
    """Load every example `owner` has no workflow of that name for, with the tools it needs; the names loaded."""
    loaded = []
    for example in examples(directory):
        if Workflow.objects.alive().filter(owner=owner, name=example.name).exists():
            continue
        for definition in example.tools:
            if not Tool.objects.filter(owner=owner, name=definition["name"]).exists():
                tool_create(owner=owner, **definition)
        workflow_create(
            owner=owner,
            name=example.name,
            description=str(example.document.get("description", "")),
            graph=example_graph(example, owner=owner),
        )
        loaded.append(example.name)
    return loaded

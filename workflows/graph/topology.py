"""Graph algorithms the validator and the Graph use: strongly connected components, cycles, a stable order."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator


def strongly_connected(outgoing: dict[str, list[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm, iterative so that a long chain can't hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in outgoing:
        if root in index:
            continue
        work = [(root, iter(outgoing[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(outgoing[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    yield _pop_component(node, stack, on_stack)


def _pop_component(root: str, stack: list[str], on_stack: set[str]) -> list[str]:
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            return component


def cycle_through(start: str, members: set[str], outgoing: dict[str, list[str]]) -> list[str]:
    """The shortest cycle from `start` back to itself inside `members` (a strongly connected group)."""
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in outgoing[node]:
            if child == start and node != start:  # a self loop is reported as such, not as this cycle
                path = [node]
                while (previous := parent[path[-1]]) is not None:
                    path.append(previous)
                return [*reversed(path), start]
            if child in members and child not in parent:
                parent[child] = node
                queue.append(child)
    return [start, start]  # pragma: no cover - every node of a strongly connected group is on a cycle

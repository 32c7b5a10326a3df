"""Templates in node config: ``{{input.a.b}}``, ``{{input.items.0}}``, ``{{nodes.<id>.<field>}}``, and
``{{input.a ?? "default"}}``.

Pure Python, no Django. The rules (docs/CONTRACT.md, Templates):

- Only two roots exist: ``input`` (the node's input) and ``nodes`` (node id -> that node's own new fields).
  ``{{input}}`` alone selects the whole input.
- A path is dot-separated segments of ``[A-Za-z0-9_-]``. A segment of digits indexes a list, or is a plain key
  when the value is an object. Nothing else: no attribute access, calls, filters or expressions.
- A string that is exactly one template (no text around the braces; spaces inside them are fine) becomes the
  looked-up value with its own type. Looked-up values are returned as they are, not copied: treat them as
  read-only. Inside longer text each template becomes text: strings as-is, everything else as compact JSON
  (``null``, ``true``, ``12.5``, ``{"a":1}``).
- Single pass: text that comes out of a lookup is never rendered again, so user data cannot inject templates.
  This is also the only way to produce a literal ``{{...}}`` in a rendered value.
- ``{{`` with no ``}}`` anywhere after it is literal text. Anything between ``{{`` and the next ``}}`` is a
  template, and a malformed one (``{{ }}``, ``{{input..a}}``, ``{{foo.bar}}``) is a TemplateError rather than
  silently left in the output. That includes ``{{{input.a}}}``: to put braces around a value, write
  ``{ {{input.a}} }``.
- A missing key, an index out of range or a lookup into a scalar is a TemplateError naming the full path.
- A default follows the path after ``??``: ``{{input.customer ?? "guest"}}``, ``{{input.count ?? 0}}``,
  ``{{input.tags ?? []}}``, ``{{nodes.fetch.result ?? null}}``. It is a JSON value (no template, no path, no
  NaN) and is used when the path is missing: a key that is not there, an index past the end, or a step through
  null. A value that is there, null included, is kept, and a lookup into a string, number or boolean, or a
  name used as a list index, is still an error (that is a mistake in the path, not a missing value). The
  default keeps its type in a whole-string template and reads as JSON inside text, like a looked-up value.
  It cannot contain ``}}``, where the template ends.
- Only values are rendered; object keys are left alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import NamedTuple

from nodes.jsonkinds import json_kind_phrase

__all__ = ["ROOTS", "TemplateError", "check_syntax", "referenced_paths", "render", "rewrite_paths", "to_text"]

ROOTS: tuple[str, ...] = ("input", "nodes")

# Non-greedy on purpose: a template ends at the first "}}", so "{{a}} and {{b}}" is two templates.
_TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+")
_PATH_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
# Beyond this many digits an index can't exist, and int() would refuse very long digit strings anyway.
_MAX_INDEX_DIGITS = 18
_MAX_SHOWN = 80
_MAX_CACHED_PATH = 200
_MAX_KEYS_SHOWN = 20
# Between a template's path and its default: {{input.customer ?? "guest"}}.
_DEFAULT_SEPARATOR = "??"
_HINT_DEFAULT = '"..."'


class TemplateError(ValueError):
    """A template that is malformed or that names something the context doesn't have."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[type[TemplateError], tuple[str, str]]:
        # Keep `path` when the error crosses a process boundary (pickling only replays args).
        return (type(self), (str(self), self.path))


class _Template(NamedTuple):
    """One ``{{...}}`` occurrence: where it sits in its string and the path it names."""

    start: int
    end: int
    path: str
    default: str | None  # the JSON text after "??", stripped; None without "??"


def render(
    value: object, context: Mapping[str, object], *, node_id: str | None = None, roots: tuple[str, ...] = ROOTS
) -> object:
    """Return `value` with every template in its string values replaced from `context`.

    Objects and lists are rebuilt (the input is never modified); other scalars pass through unchanged.
    Raises TemplateError for a malformed template or a path the context doesn't have (and no default).
    `node_id` names the node whose input `input` is, in those messages. `roots` are the names a path may start
    with: ROOTS, plus those a node type gives some of its fields (a map's `item` and `index`).
    """
    if isinstance(value, str):
        return _render_string(value, context, node_id, roots)
    if isinstance(value, Mapping):
        return {key: render(item, context, node_id=node_id, roots=roots) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(item, context, node_id=node_id, roots=roots) for item in value]
    return value


def referenced_paths(value: object) -> list[str]:
    """Every well-formed template path in `value` (searched recursively), in order, without repeats."""
    seen: dict[str, None] = {}
    for _location, text in _strings(value, ""):
        for template in _scan(text):
            if _template_problem(template) is None:
                seen.setdefault(template.path, None)
    return list(seen)


def rewrite_paths(value: object, rewrite: Callable[[str], str]) -> object:
    """`value` with the path of every well-formed template replaced by `rewrite(path)`, and everything else
    (the text around, the spacing and a default inside the braces) kept. For converting workflows from other
    systems, whose nodes name their output fields differently."""
    if isinstance(value, str):
        pieces = []
        position = 0
        for template in _scan(value):
            if _template_problem(template) is not None:
                continue
            new_path = rewrite(template.path)
            if new_path == template.path:
                continue
            inner_start = value.index(template.path, template.start + 2)
            pieces.append(value[position:inner_start] + new_path)
            position = inner_start + len(template.path)
        return "".join(pieces) + value[position:] if pieces else value
    if isinstance(value, Mapping):
        return {key: rewrite_paths(item, rewrite) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rewrite_paths(item, rewrite) for item in value]
    return value


def check_syntax(value: object, *, roots: tuple[str, ...] = ROOTS) -> list[str]:
    """Messages for each malformed template in `value`; empty when every template is well formed (its path
    starting with one of `roots`).

    A template found below the top level is prefixed with where it is, e.g. ``headers.token: ...``.
    """
    messages = []
    for location, text in _strings(value, ""):
        for template in _scan(text):
            problem = _template_problem(template, roots)
            if problem is not None:
                raw = text[template.start : template.end]
                prefix = f"{location}: " if location else ""
                messages.append(f"{prefix}template {_clip(raw)}: {problem}")
    return messages


def to_text(value: object) -> str:
    """How a value reads inside text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError) as exc:
        # Circular data or an integer too long to print: not JSON, so not renderable as text.
        raise TemplateError(f"value can't be rendered as text: {exc}") from exc


def _render_string(
    text: str, context: Mapping[str, object], node_id: str | None, roots: tuple[str, ...] = ROOTS
) -> object:
    if "{{" not in text:
        return text
    templates = list(_scan(text))
    if not templates:
        return text
    if len(templates) == 1 and templates[0].start == 0 and templates[0].end == len(text):
        return _lookup(templates[0], text, context, node_id, roots)
    pieces = []
    position = 0
    for template in templates:
        pieces.append(text[position : template.start])
        raw = text[template.start : template.end]
        value = _lookup(template, raw, context, node_id, roots)
        try:
            pieces.append(to_text(value))
        except TemplateError as exc:
            raise TemplateError(f"template {_braced(template.path)}: {exc}", template.path) from exc
        position = template.end
    pieces.append(text[position:])
    return "".join(pieces)


def _scan(text: str) -> Iterator[_Template]:
    """Yield the templates in `text`, left to right."""
    if "{{" not in text:
        return
    # Stop the search at the last "}}": beyond it no "{{" can close, and a regex scan of a long unclosed
    # tail from every "{{" would be quadratic.
    last_close = text.rfind("}}")
    if last_close < 0:
        return
    for match in _TEMPLATE_RE.finditer(text, 0, last_close + 2):
        path, separator, default = match.group(1).partition(_DEFAULT_SEPARATOR)
        yield _Template(match.start(), match.end(), path.strip(), default.strip() if separator else None)


def _template_problem(template: _Template, roots: tuple[str, ...] = ROOTS) -> str | None:
    """Why a template is malformed (its path, or the default after "??"), or None."""
    problem = _syntax_problem(template.path, roots)
    if problem is None and template.default is not None:
        problem = _default_problem(template.default)
    return problem


def _syntax_problem(path: str, roots: tuple[str, ...] = ROOTS) -> str | None:
    """Why `path` (the stripped text between the braces) is not a valid template path, or None."""
    if not path:
        return "empty template; write a path such as input.field"
    if _PATH_RE.fullmatch(path) is None:
        return _describe_bad_path(path)
    root = path.split(".", 1)[0]
    if root not in roots:
        return f'unknown root "{_clip(root)}"; paths start with {", ".join(roots[:-1])} or {roots[-1]}'
    return None


def _describe_bad_path(path: str) -> str:
    segments = path.split(".")
    if any(segment == "" for segment in segments):
        return "empty path segment (paths look like input.a.b)"
    for segment in segments:
        if _SEGMENT_RE.fullmatch(segment) is None:
            bad = next(char for char in segment if _SEGMENT_RE.fullmatch(char) is None)
            return (
                f"{json.dumps(bad, ensure_ascii=False)} is not allowed in a path; only letters, digits, "
                '"_" and "-", with "." between keys (no expressions or filters; a default goes after "??", '
                'as in {{input.a ?? "none"}})'
            )
    return "malformed path"  # pragma: no cover - every non-matching path has an empty or bad segment


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e999: Python reads it as infinity, which JSON has no way to write back
        raise ValueError(f"{text} is too large")
    return number


def _parse_default(text: str) -> object:
    """The default's value. Raises ValueError (or RecursionError for absurd nesting) when it is not JSON."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def _default_problem(text: str) -> str | None:
    """Why the text after "??" is not a default, or None."""
    # Like paths, the same few defaults are checked over and over; long ones are not worth caching.
    return _default_problem_cached(text) if len(text) <= _MAX_CACHED_PATH else _check_default(text)


def _check_default(text: str) -> str | None:
    if not text:
        return 'nothing after "??"; write a JSON value such as "guest", 0, null or []'
    try:
        _parse_default(text)
    except (ValueError, RecursionError):
        if text.startswith("{"):  # most likely cut short by its own closing brace: {{input.a ?? {}}}
            why = "a default that is an object needs a space before the closing }}, as in {{input.a ?? { } }}"
        else:
            why = "text goes in double quotes"
        return (
            f'the default after "??" must be a JSON value such as "guest", 0, true, null or [], '
            f"not {_clip(text)} ({why})"
        )
    return None


_default_problem_cached = lru_cache(maxsize=1024)(_check_default)


def _lookup(
    template: _Template, raw: str, context: Mapping[str, object], node_id: str | None, roots: tuple[str, ...] = ROOTS
) -> object:
    path = template.path
    segments = _segments(path, roots)
    if isinstance(segments, str):
        raise TemplateError(f"template {_clip(raw)}: {segments}", path)
    if template.default is not None:
        problem = _default_problem(template.default)
        if problem is not None:
            raise TemplateError(f"template {_clip(raw)}: {problem}", path)
    value: object = context
    for position, segment in enumerate(segments):
        # Plain dicts are by far the common case; only the rest goes through the slower general step.
        if type(value) is dict and segment in value:
            value = value[segment]
        elif template.default is not None and _missing(value, segment):
            # Parsed on each use: a cached list or object would be shared by every run that gets it.
            return _parse_default(template.default)
        else:
            value = _step(value, segment, segments, position, path, node_id)
    return value


def _missing(value: object, segment: str) -> bool:
    """Whether looking `segment` up in `value` finds nothing (a default applies) rather than going wrong."""
    if value is None:
        return True
    if isinstance(value, Mapping):
        return segment not in value
    if isinstance(value, (list, tuple)) and segment.isdigit():
        return len(segment) > _MAX_INDEX_DIGITS or int(segment) >= len(value)
    return False


def _segments(path: str, roots: tuple[str, ...] = ROOTS) -> tuple[str, ...] | str:
    """The path's segments, or why it is malformed."""
    # The same few paths render over and over; long (likely garbage) ones are not worth caching.
    return _parse_path_cached(path, roots) if len(path) <= _MAX_CACHED_PATH else _parse_path(path, roots)


def _parse_path(path: str, roots: tuple[str, ...] = ROOTS) -> tuple[str, ...] | str:
    problem = _syntax_problem(path, roots)
    return problem if problem is not None else tuple(path.split("."))


_parse_path_cached = lru_cache(maxsize=4096)(_parse_path)


def _owner(segments: tuple[str, ...], position: int) -> str:
    """Name what segment `position` was looked up in: the context, a root, or the previous key."""
    if position == 0:
        return "context"
    if position == 1:
        return segments[0]
    return f'"{_clip(segments[position - 1])}"'


def _step(
    value: object, segment: str, segments: tuple[str, ...], position: int, path: str, node_id: str | None = None
) -> object:
    """Look `segment` up in `value`; raise a TemplateError saying what is missing."""
    if isinstance(value, Mapping) and segment in value:
        return value[segment]
    if (
        isinstance(value, (list, tuple))
        and segment.isdigit()
        and len(segment) <= _MAX_INDEX_DIGITS
        and int(segment) < len(value)
    ):
        return value[int(segment)]
    where = f"template {_braced(path)}: {_owner(segments, position)}"
    if isinstance(value, Mapping):
        keys = _describe_keys(value)
        if node_id is not None and position == 1 and segments[0] == "input":
            # The node's input holds the run's input and every earlier node's fields: say whose input it is.
            where = f'template {_braced(path)}: the input of node "{_clip(node_id)}"'
            keys = "its input is empty" if not value else "its input has: " + keys.removeprefix("keys: ")
        hint = f"; if it is optional, give a default: {_braced(path + ' ?? ' + _HINT_DEFAULT)}"
        raise TemplateError(f'{where} has no key "{_clip(segment)}" ({keys}){hint}', path)
    if isinstance(value, (list, tuple)) and not segment.isdigit():
        raise TemplateError(f'{where} is a list; "{_clip(segment)}" is not an index', path)
    if isinstance(value, (list, tuple)):
        raise TemplateError(f"{where} has {len(value)} items, no index {_clip(segment)}", path)
    raise TemplateError(f'{where} is {json_kind_phrase(value)}, so it has no key "{_clip(segment)}"', path)


def _describe_keys(mapping: Mapping[object, object]) -> str:
    keys = [_clip(str(key)) for key in list(mapping)[: _MAX_KEYS_SHOWN + 1]]
    if not keys:
        return "it is empty"
    if len(keys) > _MAX_KEYS_SHOWN:
        return "keys: " + ", ".join(keys[:_MAX_KEYS_SHOWN]) + ", ..."
    return "keys: " + ", ".join(keys)


def _strings(value: object, location: str) -> Iterator[tuple[str, str]]:
    """Yield (dotted location, string) for every string value inside `value`."""
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{location}.{key}" if location else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{location}.{index}" if location else str(index))


def _clip(text: str) -> str:
    """Keep messages readable when a template (or a key) is huge."""
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _braced(path: str) -> str:
    return "{{" + _clip(path) + "}}"

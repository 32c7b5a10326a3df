"""Templates in node config: ``{{input.a.b}}``, ``{{input.items.0}}``, ``{{nodes.<id>.<field>}}``.

Pure Python, no Django. The rules (contract section 3, plus the choices it leaves open):

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
- Only values are rendered; object keys are left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import NamedTuple

from workflows.jsonkinds import json_kind_phrase

__all__ = ["ROOTS", "TemplateError", "check_syntax", "referenced_paths", "render", "to_text"]

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


def render(value: object, context: Mapping[str, object]) -> object:
    """Return `value` with every template in its string values replaced from `context`.

    Objects and lists are rebuilt (the input is never modified); other scalars pass through unchanged.
    Raises TemplateError for a malformed template or a path the context doesn't have.
    """
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, Mapping):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(item, context) for item in value]
    return value


def referenced_paths(value: object) -> list[str]:
    """Every well-formed template path in `value` (searched recursively), in order, without repeats."""
    seen: dict[str, None] = {}
    for _location, text in _strings(value, ""):
        for template in _scan(text):
            if _syntax_problem(template.path) is None:
                seen.setdefault(template.path, None)
    return list(seen)


def check_syntax(value: object) -> list[str]:
    """Messages for each malformed template in `value`; empty when every template is well formed.

    A template found below the top level is prefixed with where it is, e.g. ``headers.token: ...``.
    """
    messages = []
    for location, text in _strings(value, ""):
        for template in _scan(text):
            problem = _syntax_problem(template.path)
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


def _render_string(text: str, context: Mapping[str, object]) -> object:
    if "{{" not in text:
        return text
    templates = list(_scan(text))
    if not templates:
        return text
    if len(templates) == 1 and templates[0].start == 0 and templates[0].end == len(text):
        return _lookup(templates[0].path, text, context)
    pieces = []
    position = 0
    for template in templates:
        pieces.append(text[position : template.start])
        raw = text[template.start : template.end]
        value = _lookup(template.path, raw, context)
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
        yield _Template(match.start(), match.end(), match.group(1).strip())


def _syntax_problem(path: str) -> str | None:
    """Why `path` (the stripped text between the braces) is not a valid template path, or None."""
    if not path:
        return "empty template; write a path such as input.field"
    if _PATH_RE.fullmatch(path) is None:
        return _describe_bad_path(path)
    root = path.split(".", 1)[0]
    if root not in ROOTS:
        return f'unknown root "{_clip(root)}"; paths start with input or nodes'
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
                '"_" and "-", with "." between keys (no expressions or filters)'
            )
    return "malformed path"  # pragma: no cover - every non-matching path has an empty or bad segment


def _lookup(path: str, raw: str, context: Mapping[str, object]) -> object:
    segments = _segments(path)
    if isinstance(segments, str):
        raise TemplateError(f"template {_clip(raw)}: {segments}", path)
    value: object = context
    for position, segment in enumerate(segments):
        # Plain dicts are by far the common case; only the rest goes through the slower general step.
        if type(value) is dict and segment in value:
            value = value[segment]
        else:
            value = _step(value, segment, segments, position, path)
    return value


def _segments(path: str) -> tuple[str, ...] | str:
    """The path's segments, or why it is malformed."""
    # The same few paths render over and over; long (likely garbage) ones are not worth caching.
    return _parse_path_cached(path) if len(path) <= _MAX_CACHED_PATH else _parse_path(path)


def _parse_path(path: str) -> tuple[str, ...] | str:
    problem = _syntax_problem(path)
    return problem if problem is not None else tuple(path.split("."))


_parse_path_cached = lru_cache(maxsize=4096)(_parse_path)


def _owner(segments: tuple[str, ...], position: int) -> str:
    """Name what segment `position` was looked up in: the context, a root, or the previous key."""
    if position == 0:
        return "context"
    if position == 1:
        return segments[0]
    return f'"{_clip(segments[position - 1])}"'


def _step(value: object, segment: str, segments: tuple[str, ...], position: int, path: str) -> object:
    """Look `segment` up in `value`; raise a TemplateError saying what is missing."""
    if isinstance(value, Mapping) and segment in value:
        return value[segment]
    is_list = isinstance(value, (list, tuple))
    if is_list and segment.isdigit() and len(segment) <= _MAX_INDEX_DIGITS and int(segment) < len(value):
        return value[int(segment)]
    where = f"template {_braced(path)}: {_owner(segments, position)}"
    if isinstance(value, Mapping):
        raise TemplateError(f'{where} has no key "{_clip(segment)}" ({_describe_keys(value)})', path)
    if is_list and not segment.isdigit():
        raise TemplateError(f'{where} is a list; "{_clip(segment)}" is not an index', path)
    if is_list:
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

"""Size caps on what a run produces, and values PostgreSQL cannot store.

A template copies a value wherever it is written, and a node's output carries its whole input forward, so a
small input can be amplified into a huge output (an object template with the same 50 KB value under 200 keys).
Each cap is a setting; past one, the node fails with a message that names the setting.

PostgreSQL's jsonb cannot hold the NUL character (U+0000) anywhere in a string; a value that has one (an LLM
or an HTTP answer may) is stored with U+FFFD in its place rather than failing with the driver's error.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

NUL = "\x00"
REPLACEMENT = "\ufffd"


class SizeLimitError(Exception):
    """A value over one of the caps; the message names the cap's setting."""


def json_text(value: Any) -> str:
    """The value as the compact JSON text it is stored as (near enough: jsonb adds a space after separators)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def check_size(value: Any, *, setting: str, what: str, text: str | None = None) -> str:
    """Raise SizeLimitError when `value` encodes to more bytes than settings.<setting>; returns the JSON text
    (pass it back as `text` to spare encoding it again)."""
    text = json_text(value) if text is None else text
    limit = int(getattr(settings, setting))
    size = len(text.encode("utf-8")) if len(text) * 4 > limit else len(text)  # chars <= bytes <= 4 x chars
    if size > limit:
        raise SizeLimitError(f"{what} is {_human(size)}, over the limit of {_human(limit)} ({setting})")
    return text


def has_nul(text: str) -> bool:
    """Whether JSON text holds a NUL character (escaped, as json.dumps writes it, or raw)."""
    return "\\u0000" in text or NUL in text


def without_nul(value: Any) -> Any:
    """`value` with every NUL character in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(item) for item in value]
    return value


def storable(value: Any) -> tuple[Any, bool]:
    """`value` ready for a jsonb column, and whether NUL characters had to be replaced."""
    if not has_nul(json_text(value)):
        return value, False
    cleaned = without_nul(value)
    return cleaned, cleaned != value  # the text may only have looked like it held one (a literal "\\u0000")


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"

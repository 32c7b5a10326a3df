"""What the record of a call may keep: secret header values replaced by "[redacted]" (in case a server echoes
them), and only text PostgreSQL can store (NUL and unpaired UTF-16 surrogates become U+FFFD)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
# Characters that PostgreSQL stores in neither text nor jsonb: NUL, and the UTF-16 surrogates that a JSON escape
# (\ud800) can put in a Python string on their own (a valid pair decodes to one character).
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
# Bytes of an answer that may decode to one of them: a raw NUL, or a JSON escape of NUL or of a surrogate.
UNSTORABLE_HINT_RE = re.compile(rb"\x00|\\u0000|\\u[dD][89a-fA-F]")


class Redactor:
    """Replaces secret header values (and the credential part of `Scheme credential` values) in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = set()
        for secret in secrets:
            if secret:
                values.add(secret)
                # "Bearer abc123": a server echoing only the credential must not show it either.
                credential = secret.partition(" ")[2].strip()
                if len(credential) >= 4:
                    values.add(credential)
        # Longest first, so that a value containing another is replaced whole.
        self._values = sorted(values, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(key)): self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value


class Storable:
    """Makes what a call record keeps storable by PostgreSQL: NUL characters and unpaired UTF-16 surrogates (in
    strings and keys) become U+FFFD. `note` says what was replaced, for the record."""

    def __init__(self) -> None:
        self.found: set[str] = set()

    def text(self, text: str) -> str:
        if not UNSTORABLE_RE.search(text):
            return text
        if "\x00" in text:
            self.found.add("NUL characters")
        if any("\ud800" <= char <= "\udfff" for char in text):
            self.found.add("unpaired UTF-16 surrogates")
        return UNSTORABLE_RE.sub("\ufffd", text)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(key) if isinstance(key, str) else key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    @property
    def note(self) -> str:
        return f"{' and '.join(sorted(self.found))} were replaced with U+FFFD" if self.found else ""

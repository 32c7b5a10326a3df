"""The web process: daphne, with webhook URLs redacted from everything it prints, and a pool of database
connections (FLOWNOVA_DB_POOL_SIZE, see flownova/settings.py).

`python -m flownova.serve <daphne's arguments>` runs daphne's own command line. daphne writes its access log
(one line per request, with the path) to standard output, outside Python's logging, so the logging filter that
redacts `/hooks/<secret>` (flownova.logcontext) never sees it. Here standard output goes through the same
redaction before daphne starts: a webhook's URL is its credential and must not reach a log.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

from daphne.cli import CommandLineInterface  # type: ignore[import-untyped]  # daphne ships no types

from flownova.logcontext import redact_webhook_paths


class RedactedStream(io.TextIOBase):
    """A text stream that writes to another with webhook secrets redacted, line by line as daphne writes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_webhook_paths(text))
        if text.endswith("\n"):  # daphne never flushes its access log: a line is out as soon as it is whole
            self._stream.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()


# Connections of the web process come from a pool of this size unless set (flownova/settings.py says why).
DEFAULT_POOL_SIZE = "16"


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("FLOWNOVA_DB_POOL_SIZE", DEFAULT_POOL_SIZE)
    sys.stdout = RedactedStream(sys.stdout)
    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()

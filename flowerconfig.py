"""Flower's configuration: `celery -A flownova flower` reads `flowerconfig.py` from its working directory (the
default of its --conf option), after the FLOWER_* environment variables and the command line options.

Flower shows every task's arguments and results and can revoke tasks and shut workers down, so with DEBUG off
it refuses to start without credentials: FLOWER_BASIC_AUTH=user:password (or --basic_auth), or an OAuth setup
(FLOWER_AUTH / --auth with its provider). `bin/start` sets the demo user's credentials when none are given.
"""

from __future__ import annotations


def _require_credentials() -> None:
    from django.conf import settings
    from tornado.options import options

    if settings.DEBUG:
        return
    entries = [entry for entry in (options.basic_auth or []) if entry]
    malformed = [entry.partition(":")[0] for entry in entries if not all(entry.partition(":")[::2])]
    if malformed:
        raise SystemExit(
            f"Flower refuses to start: FLOWER_BASIC_AUTH must be user:password (comma-separated for several "
            f"users); the entry for {malformed[0]!r} has no user or no password."
        )
    if not entries and not options.auth:
        raise SystemExit(
            "Flower refuses to start without credentials while DEBUG is off: it shows task arguments and can "
            "revoke tasks. Set FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH with an OAuth provider)."
        )


# Run when Flower executes this file; the names it defines are read as Flower options, so none is left behind.
_require_credentials()
del _require_credentials

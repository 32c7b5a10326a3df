"""Secret headers at rest: a MultiFernet token over the JSON of `{header name: value}`.

The keys come from `settings.FLOWNOVA_SECRET_KEYS`, newest first: the first key encrypts, every key decrypts,
so a new key is rolled out by putting it in front, running `manage.py rotate_tool_secrets`, and only then
removing the old one.

With the list empty (allowed only when DEBUG is on; settings refuse to start otherwise) a key is derived from
SECRET_KEY. That key is for development only: anyone who knows SECRET_KEY can decrypt, and changing SECRET_KEY
makes stored secrets unreadable.

Nothing here logs or puts a secret value in an exception's text.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["SecretsError", "secrets_decrypt", "secrets_encrypt", "secrets_header_names", "secrets_rotate"]

_DEV_KEY_CONTEXT = b"flownova-dev-secret-headers-key:"


class SecretsError(Exception):
    """Stored secrets cannot be read with the configured keys. The message names the tool, never a value."""


def _dev_key(secret_key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(_DEV_KEY_CONTEXT + secret_key.encode()).digest())


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        # Only reachable with DEBUG on: flownova.settings refuses to start without keys otherwise. (Not checked
        # again here: test runners switch DEBUG off at run time.)
        return MultiFernet([Fernet(_dev_key(secret_key))])
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # The position, not the key: the key itself is a secret.
            raise ImproperlyConfigured(
                f"FLOWNOVA_SECRET_KEYS: key number {position} is not a Fernet key (32 url-safe base64 bytes; "
                "generate one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)."
            ) from None
    return MultiFernet(fernets)


def _keys() -> MultiFernet:
    # Read at call time (not import time) so a changed setting, in tests or after a reload, takes effect.
    return _multifernet(tuple(settings.FLOWNOVA_SECRET_KEYS), settings.SECRET_KEY)


def secrets_encrypt(headers: dict[str, str]) -> str:
    """A token holding `headers`, encrypted with the newest key; "" for no headers."""
    if not headers:
        return ""
    payload = json.dumps(dict(headers), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return _keys().encrypt(payload.encode()).decode()


def secrets_decrypt(token: str, *, tool_name: str = "") -> dict[str, str]:
    """The headers in `token` ({} for ""). Raises SecretsError when no configured key opens it."""
    if not token:
        return {}
    try:
        payload = _keys().decrypt(token.encode())
    except InvalidToken:
        raise SecretsError(_unreadable(tool_name)) from None
    headers = json.loads(payload)
    if not isinstance(headers, dict):
        raise SecretsError(_unreadable(tool_name))
    return {str(name): str(value) for name, value in headers.items()}


def secrets_rotate(token: str, *, tool_name: str = "") -> str:
    """`token` re-encrypted with the newest key (the same secrets); "" stays ""."""
    if not token:
        return ""
    try:
        return _keys().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretsError(_unreadable(tool_name)) from None


def secrets_header_names(token: str, *, tool_name: str = "") -> list[str]:
    """The names of the headers in `token`, sorted: what may be shown of secrets."""
    return sorted(secrets_decrypt(token, tool_name=tool_name))


def _unreadable(tool_name: str) -> str:
    who = f"tool {tool_name!r}" if tool_name else "this tool"
    return (
        f"the secret headers of {who} cannot be decrypted with any key in FLOWNOVA_SECRET_KEYS (was the key that "
        "encrypted them removed before `manage.py rotate_tool_secrets` ran?); enter the secret headers again"
    )

"""API authentication. A module of its own: DRF imports the authentication classes while it defines its views,
so this must not import them (flownova.api_base does)."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import authentication, exceptions

__all__ = ["TokenAuthentication"]

_TOKEN_KEY = re.compile(r"[0-9A-Za-z]{1,40}")


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, refusing a key that can't be one before asking the database (which would
    fail on a NUL byte with a 500 instead of a 401)."""

    def authenticate_credentials(self, key: str) -> Any:
        if not _TOKEN_KEY.fullmatch(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)

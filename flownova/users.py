"""The signed-in user of a request, as the user model. Like every shared module of flownova, it imports no app."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework.request import Request

__all__ = ["signed_in_user"]


def signed_in_user(request: HttpRequest | Request) -> User:
    """`request.user` in a view only signed-in users reach (`login_required`, the API's `IsAuthenticated`, the
    admin), as the user model the services take. An anonymous request that got this far is refused (403)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("Sign in first.")
    return user

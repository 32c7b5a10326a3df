"""Webhook signatures, as GitHub and Stripe sign theirs: an HMAC-SHA256 of the timestamp and the raw body.

The sender puts the time it signed at in `X-FlowNova-Timestamp` (Unix seconds) and
`sha256=<hex of HMAC-SHA256(signing secret, "<timestamp>." + body)>` in `X-FlowNova-Signature`. Signing the
timestamp with the body means an old call cannot be replayed with a fresh timestamp; a timestamp too far from
the server's clock is refused; and within that tolerance the web process refuses a signature it has already
accepted (see `triggers.hooks`).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-FlowNova-Signature"
TIMESTAMP_HEADER = "X-FlowNova-Timestamp"
_PREFIX = "sha256="


class BadSignature(Exception):
    """Why a call's signature is refused (said in the 401's detail: it reveals nothing of the secret)."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-FlowNova-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(
    secret: str, body: bytes, *, signature: str | None, timestamp: str | None, tolerance: int, now: float | None = None
) -> str:
    """Check a call's signature; return its digest (what a replay check remembers) or raise BadSignature."""
    if not signature:
        raise BadSignature(f"this webhook needs a signature: send {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}")
    if not timestamp:
        raise BadSignature(f"a signed call needs {TIMESTAMP_HEADER} (the Unix time it was signed at)")
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise BadSignature(f"{TIMESTAMP_HEADER} must be a Unix time in whole seconds") from None
    current = time.time() if now is None else now
    if abs(current - signed_at) > tolerance:
        raise BadSignature(f"{TIMESTAMP_HEADER} is more than {tolerance} s from the server's clock")
    if not signature.startswith(_PREFIX):
        raise BadSignature(f"{SIGNATURE_HEADER} must be sha256=<hex digest>")
    expected = sign(secret, body, signed_at)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise BadSignature("the signature does not match the body")
    return expected[len(_PREFIX) :]

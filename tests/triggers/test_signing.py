"""Webhook signatures on their decision function: good, tampered, expired, malformed."""

from __future__ import annotations

import pytest

from triggers.signing import BadSignature, sign, verify

SECRET = "whsec-test"
BODY = b'{"order": 42}'
NOW = 1_800_000_000


def check(signature: str | None, timestamp: str | None, body: bytes = BODY, now: float = NOW) -> str:
    return verify(SECRET, body, signature=signature, timestamp=timestamp, tolerance=300, now=now)


def test_a_good_signature_passes_and_gives_its_digest() -> None:
    signature = sign(SECRET, BODY, NOW)
    assert signature.startswith("sha256=")
    assert check(signature, str(NOW)) == signature.removeprefix("sha256=")
    assert check(signature.upper().replace("SHA256=", "sha256="), str(NOW))  # hex case does not matter


@pytest.mark.parametrize(
    ("signature", "timestamp", "body", "now", "words"),
    [
        (None, str(NOW), BODY, NOW, "needs a signature"),
        (sign(SECRET, BODY, NOW), None, BODY, NOW, "needs X-FlowNova-Timestamp"),
        (sign(SECRET, BODY, NOW), "yesterday", BODY, NOW, "Unix time"),
        (sign(SECRET, BODY, NOW), str(NOW), b'{"order": 43}', NOW, "does not match"),
        (sign("another secret", BODY, NOW), str(NOW), BODY, NOW, "does not match"),
        # the body signed with an older timestamp, sent with a fresh one: the timestamp is part of what is signed
        (sign(SECRET, BODY, NOW - 600), str(NOW), BODY, NOW, "does not match"),
        (sign(SECRET, BODY, NOW - 301), str(NOW - 301), BODY, NOW, "more than 300 s"),
        (sign(SECRET, BODY, NOW + 301), str(NOW + 301), BODY, NOW, "more than 300 s"),
        ("md5=abc", str(NOW), BODY, NOW, "sha256=<hex digest>"),
    ],
)
def test_a_bad_signature_is_refused_saying_why(
    signature: str | None, timestamp: str | None, body: bytes, now: float, words: str
) -> None:
    with pytest.raises(BadSignature) as caught:
        check(signature, timestamp, body, now)
    assert words in str(caught.value)
    assert SECRET not in str(caught.value)

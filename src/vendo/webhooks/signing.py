"""Webhook signatures, as Standard Webhooks (https://www.standardwebhooks.com) defines them.

Every delivery carries three headers:

- ``webhook-id``: one id per event, the same on every retry of that event, so a receiver
  can drop duplicates;
- ``webhook-timestamp``: Unix seconds of this attempt (receivers refuse old ones);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per
  secret, space-separated, so a receiver keeps working while an account rotates its secret.

A secret is ``whsec_`` + standard base64 of 32 random bytes. The official Python client
splits it on ``_`` and wants exactly two parts, the JavaScript one takes the text after the
last ``_``: the standard alphabet (never the URL-safe one, which has ``_``) keeps both happy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence

__all__ = [
    "SECRET_PREFIX",
    "InvalidSecret",
    "new_message_id",
    "new_secret",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
_KEY_BYTES = 32


class InvalidSecret(ValueError):
    """A webhook secret that is not ``whsec_`` + base64."""


def new_secret() -> str:
    """A fresh account secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode("ascii")


def new_message_id() -> str:
    """A ``webhook-id`` for one event (kept for all retries of it)."""
    return "msg_" + secrets.token_hex(16)


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise InvalidSecret("a webhook secret is whsec_ followed by base64") from exc
    if not key:
        raise InvalidSecret("a webhook secret may not be empty")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one attempt."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    secrets_: str | Sequence[str],
    message_id: str,
    body: bytes,
    *,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt at delivering ``body``.

    ``secrets_`` is one secret, or several while a secret is being rotated.
    """
    keys = [secrets_] if isinstance(secrets_, str) else list(secrets_)
    if not keys:
        raise InvalidSecret("at least one webhook secret is needed to sign")
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(sign(key, message_id, ts, body) for key in keys),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``headers`` hold a valid, fresh signature of ``body`` by ``secret``.

    What a receiver does; Vendo uses it in its own tests and documentation examples.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and stamp and signatures):
        return False
    try:
        ts = int(stamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    expected = sign(secret, message_id, ts, body).encode()
    return any(
        hmac.compare_digest(expected, candidate.encode()) for candidate in signatures.split()
    )

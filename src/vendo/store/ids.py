"""Identifiers, tokens and timestamps used across the store."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timezone

__all__ = ["hash_token", "new_id", "new_token", "new_webhook_secret", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Each random byte's low five bits pick a character: 256 is a multiple of 32, so each of
# the 32 is as likely as any other.
_BASE32 = bytes(b"abcdefghijklmnopqrstuvwxyz234567"[b & 31] for b in range(256))


def new_id() -> str:
    """A 26-character lowercase base32 id (130 random bits), like Replicate's. One
    ``translate`` of 26 random bytes: ``base64.b32encode`` is a Python loop, and every
    prediction makes an id."""
    return secrets.token_bytes(26).translate(_BASE32).decode("ascii")


def new_token() -> str:
    """A fresh API token (``r8_`` prefix, as Replicate's, so tools that sniff it work)."""
    return "r8_" + secrets.token_urlsafe(30)


def hash_token(token: str) -> str:
    """Tokens are stored as their SHA-256: a leaked database leaks no usable token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_webhook_secret() -> str:
    """``whsec_`` + standard base64 of 32 random bytes (exactly one ``_`` in the whole
    string, which both official clients rely on when they split it)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")

"""The web pages' session: a cookie that ``/v1`` accepts together with a CSRF header.

Signing in on ``/login`` makes a new API token of the signer's own (named ``web
session``, scoped like the token typed in) and puts it in an HttpOnly, SameSite=Lax
cookie. The pages' scripts never see it: they call ``/v1`` with the cookie and the
header :data:`CSRF_HEADER`, whose value (:func:`csrf_for`, an HMAC of the session
token) the server writes into each page it renders. A request authenticated by the
cookie alone is refused, so another site can make the browser send the cookie but
cannot make a request count: it can neither read the page holding the CSRF value nor
send a custom header cross-origin (no CORS is served). Signing out revokes the token,
so a copied cookie stops working at once, in every server sharing the database.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from vendo.errors import Unauthenticated

__all__ = ["COOKIE", "CSRF_HEADER", "SESSION_TOKEN_NAME", "csrf_for", "session_token"]

COOKIE = "vendo_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TOKEN_NAME = "web session"


def csrf_for(token: str) -> str:
    """The CSRF value that goes with the session ``token``: derived, so nothing is
    stored, and unguessable without the token."""
    return hmac.new(token.encode(), b"vendo csrf", hashlib.sha256).hexdigest()


def session_token(request: Request) -> str | None:
    """The session token of a request without ``Authorization``: None when it has no
    session cookie; 401 when the cookie comes without its CSRF header."""
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), csrf_for(token).encode()):
        raise Unauthenticated(
            f"a session cookie authenticates only with its {CSRF_HEADER} header "
            "(the value the signed-in page holds)"
        )
    return token

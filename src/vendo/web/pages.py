"""The pages' routes: each renders a template; the page's script does the rest through
``/v1``. Sign-in and sign-out are here too (see :mod:`vendo.api.v1.session`).

Pages need a session: without one they redirect to ``/login?next=<the page>``. Page
paths never start with ``/v1/`` or ``/static/``: a two-segment path there is the API's
(or a 404 in its words), never a model page.
"""

from __future__ import annotations

import contextlib
import secrets
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from vendo.api.v1.context import base_url, cached, call, identify, platform, visible_model
from vendo.api.v1.policy import Caller
from vendo.api.v1.session import COOKIE, CSRF_HEADER, SESSION_TOKEN_NAME, csrf_for
from vendo.errors import NotFound
from vendo.store import Identity
from vendo.web.markdown import render_markdown

__all__ = ["routes"]

LOGIN_CSRF = "vendo_login_csrf"
# the account's pages: path -> (template, title)
ACCOUNT_PAGES = {
    # the title, lower case, names the list runs.html shows
    "/predictions": ("runs.html", "Predictions"),
    "/trainings": ("runs.html", "Trainings"),
    "/tokens": ("tokens.html", "API tokens"),
    "/usage": ("usage.html", "Usage"),
    "/deployments": ("deployments.html", "Deployments"),
}
_RESERVED = ("/v1/", "/static/")


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("vendo.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


class _PageRoute(Route):
    """A page's route: never matches the API's or the static files' paths."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("path", "").startswith(_RESERVED):
            return Match.NONE, {}
        return super().matches(scope)


def _secure(request: Request) -> bool:
    return base_url(request).startswith("https:")


async def _session(request: Request) -> tuple[Identity, str] | None:
    """The signed-in identity and its session token, or None."""
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    found = await identify(request, token)
    return None if found is None else (found, token)


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = (
        _environment()
        .get_template(template)
        .render(request=request, base_url=base_url(request), csrf_header=CSRF_HEADER, **context)
    )
    headers = {
        # the pages load only their own scripts and styles; outputs may be any https URL
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data: blob: https: http:; "
            "media-src 'self' data: blob: https: http:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
        ),
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(html, status_code=status, headers=headers)


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _local(target: str) -> str:
    """``target`` when it is a path of this site, else ``/`` (no open redirect)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _signed_in(identity: Identity, token: str) -> dict[str, Any]:
    account = identity.organization or identity.user
    return {
        "username": identity.user.username,
        "account": account.username,
        "is_admin": bool(identity.user.is_admin) and identity.organization is None,
        "csrf": csrf_for(token),
    }


def _login_form(request: Request, next_path: str, status: int = 200, error: str = "") -> Response:
    """The sign-in form, with a fresh login CSRF value in a cookie and in the form."""
    value = secrets.token_urlsafe(24)
    response = _render(
        request, "login.html", status, title="Sign in", form_csrf=value, next=next_path,
        error=error,
    )  # fmt: skip
    response.set_cookie(
        LOGIN_CSRF, value, httponly=True, samesite="strict", secure=_secure(request), path="/"
    )
    return response


async def login_page(request: Request) -> Response:
    return _login_form(request, _local(request.query_params.get("next", "/")))


async def login(request: Request) -> Response:
    """Sign in with an API token: a new session token of the same user (and scope)."""
    async with request.form(max_files=0, max_fields=8) as form:
        token = str(form.get("token") or "").strip()
        sent = str(form.get("csrf") or "")
        next_path = _local(str(form.get("next") or "/"))
    expected = request.cookies.get(LOGIN_CSRF, "")
    if not expected or not secrets.compare_digest(sent, expected):
        return _login_form(request, next_path, 403, "The form expired; sign in again.")
    found = await identify(request, token) if token else None
    if found is None:
        error = "That API token is not valid (unknown or revoked)."
        return _login_form(request, next_path, 401, error)
    accounts = platform(request).store.accounts
    _, session = await call(
        accounts.issue_token,
        found.user.id,
        name=SESSION_TOKEN_NAME,
        organization_id=found.token.organization_id,
    )
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE, session, httponly=True, samesite="lax", secure=_secure(request), path="/"
    )
    response.delete_cookie(LOGIN_CSRF, path="/")
    return response


async def logout(request: Request) -> Response:
    """Sign out: the session's token is revoked, the cookie cleared."""
    async with request.form(max_files=0, max_fields=4) as form:
        sent = str(form.get("csrf") or "")
    signed = await _session(request)
    if signed is not None:
        identity, token = signed
        if not secrets.compare_digest(sent, csrf_for(token)):
            return HTMLResponse("The sign-out form expired; reload the page.", status_code=403)
        # revoked meanwhile (on the tokens page, say): signed out all the same
        with contextlib.suppress(NotFound):
            await call(platform(request).store.accounts.revoke_token, identity.token.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def explore(request: Request) -> Response:
    signed = await _session(request)
    if signed is None:
        return _to_login(request)
    return _render(request, "explore.html", title="Explore", **_signed_in(*signed))


async def model_page(request: Request) -> Response:
    """A model's page: its README rendered here; the rest by the page's script."""
    signed = await _session(request)
    if signed is None:
        return _to_login(request)
    identity, token = signed
    owner, name = request.path_params["owner"], request.path_params["name"]
    try:
        model = await visible_model(request, Caller.of(identity), owner, name)
    except NotFound as exc:
        return _render(
            request, "not_found.html", 404, title="Not found", detail=exc.detail,
            **_signed_in(identity, token),
        )  # fmt: skip
    latest = await cached(platform(request).store.cached.latest_version, model.id)
    return _render(
        request,
        "model.html",
        title=f"{owner}/{name}",
        owner=owner,
        name=name,
        description=model.description or "",
        readme=render_markdown(model.readme or ""),
        # its cog.yaml has train: the page gets a Train tab
        trainable=latest is not None and bool((latest.config or {}).get("train")),
        **_signed_in(identity, token),
    )


async def prediction_page(request: Request) -> Response:
    signed = await _session(request)
    if signed is None:
        return _to_login(request)
    pid = request.path_params["id"]
    return _render(
        request, "prediction.html", title=f"Prediction {pid}", prediction_id=pid,
        **_signed_in(*signed),
    )  # fmt: skip


async def account_page(request: Request) -> Response:
    signed = await _session(request)
    if signed is None:
        return _to_login(request)
    template, title = ACCOUNT_PAGES[request.url.path]
    return _render(request, template, title=title, **_signed_in(*signed))


def routes() -> list[BaseRoute]:
    """The pages, after ``/v1``'s routes (``/{owner}/{name}`` would match anything
    with two segments)."""
    found: list[BaseRoute] = [
        Mount("/static", StaticFiles(packages=[("vendo.web", "static")]), name="static"),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        _PageRoute("/", explore, methods=["GET"]),
    ]
    found += [_PageRoute(path, account_page, methods=["GET"]) for path in ACCOUNT_PAGES]
    found += [
        _PageRoute("/p/{id}", prediction_page, methods=["GET"]),
        _PageRoute("/{owner}/{name}", model_page, methods=["GET"]),
    ]
    return found

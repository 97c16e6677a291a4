"""Account, hardware and default webhook secret routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.context import call, caller, platform
from vendo.api.v1.render import account_json

__all__ = ["routes"]


async def get_account(request: Request) -> Response:
    """The authenticated account."""
    who = await caller(request)
    return JSONResponse(account_json(who.account))


async def list_hardware(request: Request) -> Response:
    """Hardware this server can run models on."""
    await caller(request)
    offered = platform(request).hardware.offered
    return JSONResponse([s.listed() for s in offered])  # a bare array, as Replicate's


async def webhook_secret(request: Request) -> Response:
    """The account's default webhook signing secret."""
    who = await caller(request)
    key = await call(platform(request).store.accounts.webhook_secret, who.account.id)
    return JSONResponse({"key": key})


routes = [
    Route("/v1/account", get_account, methods=["GET"]),
    Route("/v1/hardware", list_hardware, methods=["GET"]),
    Route("/v1/webhooks/default/secret", webhook_secret, methods=["GET"]),
]

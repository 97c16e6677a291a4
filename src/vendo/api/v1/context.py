"""What every /v1 route needs: the platform's parts, the caller, URLs and JSON bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar, TypeVarTuple, Unpack
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from vendo.api.body import parse_json, read_body
from vendo.api.headers import header
from vendo.api.responses import JSONResponse
from vendo.api.v1.credit import CreditGate
from vendo.api.v1.limits import RateLimiter
from vendo.api.v1.policy import Caller, can_see
from vendo.api.v1.session import session_token
from vendo.config import Settings
from vendo.errors import BadRequest, NotFound, Unauthenticated
from vendo.files.storage import FileStorage
from vendo.hardware import Hardware
from vendo.queue import EventBus, Queue
from vendo.queue.cluster import ClusterRelay
from vendo.store import (
    MISS,
    CachedRead,
    Identity,
    ModelRow,
    PredictionRow,
    Store,
    hash_token,
)
from vendo.store.sealing import SecretBox

__all__ = [
    "Caller",
    "Platform",
    "RelayLike",
    "SchedulerLike",
    "base_url",
    "cached",
    "call",
    "caller",
    "header",
    "identify",
    "iso",
    "json_body",
    "page",
    "parse_time",
    "platform",
    "secret_box",
    "visible_model",
]

V = TypeVar("V")
Args = TypeVarTuple("Args")


class SchedulerLike(Protocol):
    """What the API needs from ``vendo.scheduler.Scheduler``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def notify(self, version_id: str) -> None: ...

    async def schedule(
        self, prediction: PredictionRow, kind: str = "predict", *, count_run: bool = False
    ) -> None: ...

    async def run_and_wait(
        self,
        prediction: PredictionRow,
        wait: float,
        *,
        count_run: bool = False,
        before_queue: Callable[[], None] | None = None,
    ) -> PredictionRow | None: ...

    async def cancel(self, prediction_id: str, reason: str = "canceled") -> bool: ...

    async def deployment_changed(self, key: str, *, disabled: bool = False) -> None: ...

    def instance_count(self, key: str) -> int: ...

    def pool_states(self) -> dict[str, dict[str, int]]: ...

    @property
    def metrics_registry(self) -> Any: ...
    def stop_pools_of(self, owner_id: int) -> None: ...


class RelayLike(Protocol):
    """What create needs of the webhook relay."""

    def no_webhook(self, prediction_id: str) -> None: ...


@dataclass
class Platform:
    """The running platform, kept in ``app.state.platform``."""

    settings: Settings
    store: Store
    queue: Queue
    bus: EventBus
    storage: FileStorage
    scheduler: SchedulerLike | None = None
    # the hardware catalogue and what this machine offers of it (read by create_app)
    hardware: Hardware = field(kw_only=True)
    # seals secret inputs before anything is stored; loaded at start-up (see secret_box)
    secrets: SecretBox | None = None
    # PostgreSQL: events and cancels to and from the other processes of the database
    cluster: ClusterRelay | None = None
    # the running webhook relay (vendo.api.v1.webhooks.WebhookRelay), once started
    webhook_relay: RelayLike | None = None
    # version id -> whether its Output is an iterator (versions never change)
    iterator_versions: dict[str, bool] = field(default_factory=dict)
    # the task pushing the example models (vendo.api.v1.push.push_examples), if any
    examples_task: asyncio.Task[Any] | None = None
    # ``<data_dir>/inputs``: each prediction's input files go in a folder of its own
    inputs_root: Path = field(init=False)
    # rate limits per token, and credit per account (docs/usage.md)
    limits: RateLimiter = field(init=False)
    credit: CreditGate = field(init=False)

    def __post_init__(self) -> None:
        self.inputs_root = Path(self.settings.data_dir) / "inputs"
        self.limits = RateLimiter.from_settings(self.settings)
        self.credit = CreditGate(
            self.store, self.hardware.catalog, self.settings.credit_check_interval
        )


def secret_box(p: Platform) -> SecretBox:
    """The platform's :class:`SecretBox` (made from the settings on first use when
    start-up did not)."""
    if p.secrets is None:
        p.secrets = SecretBox.from_settings(p.settings)
    return p.secrets


def platform(request: Request) -> Platform:
    # kept in the request's scope: a request asks several times, and app.state's
    # attribute lookup costs more than the dict's
    scope = request.scope
    found: Platform | None = scope.get("vendo.platform")
    if found is None:
        found = scope["vendo.platform"] = request.app.state.platform
    return found


async def call(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking store call off the event loop."""
    return await run_in_threadpool(func, *args, **kwargs)


async def cached(read: CachedRead[Unpack[Args], V], *args: Unpack[Args]) -> V:
    """``read(*args)`` (one of ``store.cached``) through the store's read cache: from
    memory when it has it (no thread hop), else read off the event loop and kept."""
    value = read.peek(*args)
    if value is MISS:
        found: V = await run_in_threadpool(read, *args)
        return found
    return value


async def caller(request: Request) -> Caller:
    """The authenticated caller (``Authorization: Bearer|Token <token>``, or the web
    pages' session cookie with its CSRF header: :mod:`~vendo.api.v1.session`), else 401."""
    authorization = header(request, "authorization")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    source = "api"
    if not authorization:
        token = session_token(request) or ""
        source = "web"  # the pages' session: what they create is the web's (Replicate's)
        if not token:
            raise Unauthenticated("You did not pass an authentication token")
    elif scheme.lower() not in ("bearer", "token") or not token:
        raise Unauthenticated("Authorization header must be 'Bearer <token>' or 'Token <token>'")
    found = await identify(request, token)
    if found is None:
        raise Unauthenticated("You did not pass a valid authentication token")
    p = platform(request)
    p.limits.check(found.token.id, request.scope)
    if p.store.accounts.due(found.token.id):  # at most once a minute per token
        await call(p.store.accounts.used, found.token.id)
    return Caller.of(found, source)


async def identify(request: Request, token: str) -> Identity | None:
    """Who presents ``token`` (None: unknown or revoked), through the read cache."""
    store = platform(request).store
    # another process sharing the data dir (`vendo tokens revoke`, say) may have
    # changed accounts: one stat, and the cache is forgotten if it did
    store.sync_cache()
    found: Identity | None = await cached(store.cached.caller, hash_token(token))
    return found


def parse_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 date-time (or date) query parameter in UTC (naive: UTC), else 400
    naming it; None when absent or empty."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        # in UTC here: 0001-01-01T00:00:00+14:00 has no UTC date-time (OverflowError)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise BadRequest(
            f"{name} must be an ISO 8601 date-time from year 1 to 9999, got {value[:60]!r}"
        ) from None


def base_url(request: Request) -> str:
    """Absolute root URL: ``Settings.public_url``, else the request's scheme and host,
    honouring ``X-Forwarded-Proto``/``X-Forwarded-Host`` from a reverse proxy."""
    found: str | None = request.scope.get("vendo.base_url")
    if found is not None:  # a request asks several times: work it out once
        return found
    configured = platform(request).settings.public_url
    if configured:
        found = configured.rstrip("/")
    else:
        # the scope's scheme, not request.url's: building the URL costs more than this
        scheme = header(request, "x-forwarded-proto").split(",")[0].strip() or str(
            request.scope.get("scheme", "http")
        )
        host = (
            header(request, "x-forwarded-host").split(",")[0].strip()
            or header(request, "host")
            or request.url.netloc
        )
        found = f"{scheme}://{host}"
    request.scope["vendo.base_url"] = found
    return found


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with microseconds and ``Z``."""
    if value is None:
        return None
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    # isoformat is several times quicker than strftime; it is "+00:00" for UTC
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (strict JSON, size and depth capped: see
    :mod:`vendo.api.body`), else 400/413/422."""
    settings = platform(request).settings
    raw = await read_body(request, settings.max_request_bytes)
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    body = parse_json(raw, max_depth=settings.max_json_depth)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def page(
    request: Request, results: list[Any], next_cursor: str | None, previous: str | None
) -> JSONResponse:
    """``{next, previous, results}`` with absolute cursor URLs keeping other params."""

    def link(cursor: str | None) -> str | None:
        if cursor is None:
            return None
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        params.append(("cursor", cursor))
        return f"{base_url(request)}{request.url.path}?{urlencode(params)}"

    return JSONResponse({"next": link(next_cursor), "previous": link(previous), "results": results})


async def visible_model(
    request: Request, who: Caller, owner: str, name: str, *, fresh: bool = True
) -> ModelRow:
    """The model if the caller may see it (see :mod:`~vendo.api.v1.policy`), else 404. With
    ``fresh=False`` it may come from the read cache (its ``run_count`` a few seconds
    old): for requests that only need its identity and visibility."""
    p = platform(request)
    if fresh:
        model = await call(p.store.catalog.model, owner, name)
    else:
        model = await cached(p.store.cached.model, owner, name)
    if model is None or not can_see(who, model):
        raise NotFound(f"model {owner}/{name} not found")
    return model

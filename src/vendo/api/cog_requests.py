"""The checks of a Cog create request's body (``POST``/``PUT /predictions``), in the
order Cog's server answers them; each refusal names the field, as FastAPI's 422s do."""

from __future__ import annotations

from typing import Any

from vendo.api.body import parse_json
from vendo.errors import InvalidInput, RequestError
from vendo.webhooks.outbox import WebhookURLError, check_webhook_url
from vendo.webhooks.sender import parse_events_filter

__all__ = ["Rejected", "check_context", "check_webhook", "prediction_id", "read_payload"]


class Rejected(Exception):
    """A request refused before any work starts: where (``loc``) and why."""

    def __init__(self, loc: list[str], msg: str, status: int = 422) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.status = loc, msg, status


def read_payload(body: bytes, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object: strict JSON with a depth cap, so that nothing a client
    sends may end in a 500."""
    try:
        payload = parse_json(body, max_depth=max_depth) if body else {}
    except InvalidInput as exc:
        first = exc.errors[0]
        where = [] if first.field == "body" else first.field.split(".")
        raise Rejected(["body", *where], first.description) from None
    except RequestError as exc:
        raise Rejected(["body"], f"Invalid JSON: {exc.detail}", 400) from None
    if not isinstance(payload, dict):
        raise Rejected(["body"], "Request body should be a JSON object")
    return payload


def prediction_id(payload: dict[str, Any], path_id: str | None) -> str | None:
    """The id the client chose: the URL's (``PUT``), which the body may repeat, else
    the body's."""
    pid = payload.get("id")
    if pid is not None and not isinstance(pid, str):
        raise Rejected(["body", "id"], "id should be a string")
    if path_id is None:
        return pid
    if pid is not None and pid != path_id:
        raise Rejected(["body", "id"], "prediction ID must match the ID supplied in the URL")
    return path_id


def check_context(payload: dict[str, Any]) -> dict[str, str]:
    context = payload.get("context") or {}
    if not isinstance(context, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in context.items()
    ):
        raise Rejected(["body", "context"], "context should map strings to strings")
    return context


def check_webhook(
    payload: dict[str, Any], *, allow_private: bool
) -> tuple[str | None, frozenset[str] | None]:
    """The webhook URL and its events filter, checked as the sender will use them."""
    webhook = payload.get("webhook")
    if webhook is None:
        return None, None
    if not isinstance(webhook, str) or not webhook.startswith(("http://", "https://")):
        raise Rejected(["body", "webhook"], "webhook should be an http(s) URL")
    try:
        check_webhook_url(webhook, allow_private=allow_private)
    except WebhookURLError as exc:
        raise Rejected(["body", "webhook"], str(exc)) from None
    try:
        return webhook, parse_events_filter(payload.get("webhook_events_filter"))
    except (TypeError, ValueError) as exc:
        raise Rejected(["body", "webhook_events_filter"], str(exc)) from None

"""One exception tree for the whole platform, and one JSON error shape.

Every error a user can see is a :class:`VendoError`. The HTTP layer turns it into an
``application/problem+json`` body (RFC 9457) through :meth:`VendoError.to_problem`;
the CLI prints its ``detail``.

    VendoError
    +-- ConfigError            bad settings or a bad cog.yaml (also a BuildError)
    +-- BuildError             an environment could not be built
    |   +-- ConfigError
    +-- ModelLoadError         predict.py cannot be loaded or its signature is invalid
    +-- RunnerError            the runner child process failed or died
    +-- RequestError           the caller sent something wrong (4xx)
        +-- BadRequest         400 malformed body
        +-- Unauthenticated    401
        +-- PaymentRequired    402 the account's credit is used up
        +-- Forbidden          403
        +-- NotFound           404
        +-- Conflict           409
        +-- PayloadTooLarge    413
        +-- InvalidInput       422, with one entry per invalid field
        +-- RateLimited        429, with Retry-After and ``retry_after``

The model runtime (``sdk``/``schema``/``runner``) is stdlib-only and cannot import this
module; the parent process maps the runtime's own errors into this tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BadRequest",
    "BuildError",
    "ConfigError",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "ModelLoadError",
    "NotFound",
    "PayloadTooLarge",
    "PaymentRequired",
    "RateLimited",
    "RequestError",
    "RunnerError",
    "SecretsKeyError",
    "StorageError",
    "Unauthenticated",
    "VendoError",
    "problem",
]


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The one JSON error shape (problem+json): ``{title, status, detail, ...}``."""
    body: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    body.update(extra)
    return body


class VendoError(Exception):
    """Base of every error Vendo reports to a user."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        # Extension members of the problem (RFC 9457 section 3.2), e.g. ``build``.
        self.extra: dict[str, Any] = {}
        # HTTP headers of the problem response (``Retry-After``, ...)
        self.headers: dict[str, str] = {}

    def to_problem(self) -> dict[str, Any]:
        return problem(self.status, self.title, self.detail, **self.extra)


class BuildError(VendoError):
    """An environment could not be built; ``log_tail`` holds the end of the build log."""

    status = 400
    title = "Build failed"

    def __init__(self, detail: str, log_tail: str = "") -> None:
        super().__init__(detail)
        self.log_tail = log_tail


class ConfigError(BuildError):
    """A setting or a cog.yaml field is wrong; the message names the field."""

    title = "Invalid configuration"


class ModelLoadError(VendoError):
    """predict.py could not be loaded, or its signature breaks a rule."""

    status = 400
    title = "Model load failed"


class RunnerError(VendoError):
    """The runner child process failed, hung or died."""

    status = 500
    title = "Runner failed"


class SecretsKeyError(VendoError):
    """The key that seals secret inputs is missing, malformed, exposed, or not the one a
    prediction's secrets were sealed with."""

    status = 500
    title = "Secrets key unusable"


class StorageError(VendoError):
    """File storage (``VENDO_STORAGE_URL``) is misconfigured or cannot be reached."""

    status = 503
    title = "Storage unavailable"


class RequestError(VendoError):
    status = 400
    title = "Bad Request"


class BadRequest(RequestError):
    pass


class Unauthenticated(RequestError):
    status = 401
    title = "Unauthenticated"


class PaymentRequired(RequestError):
    status = 402
    title = "Payment Required"


class Forbidden(RequestError):
    status = 403
    title = "Forbidden"


class NotFound(RequestError):
    status = 404
    title = "Not found"


class Conflict(RequestError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(RequestError):
    status = 413
    title = "Payload Too Large"


@dataclass(frozen=True)
class FieldError:
    """One invalid field: where, what kind of problem, and a sentence for a person."""

    field: str
    type: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "type": self.type, "description": self.description}


class InvalidInput(RequestError):
    status = 422
    title = "Input validation failed"

    def __init__(self, errors: list[FieldError]) -> None:
        detail = "; ".join(f"{e.field}: {e.description}" for e in errors) or "invalid input"
        super().__init__(detail)
        self.errors = errors

    def to_problem(self) -> dict[str, Any]:
        return problem(
            self.status,
            self.title,
            self.detail,
            invalid_fields=[e.as_dict() for e in self.errors],
        )


class RateLimited(RequestError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.extra["retry_after"] = retry_after
        self.headers["Retry-After"] = str(retry_after)

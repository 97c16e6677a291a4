"""Exceptions that model code may see or raise (``cog.exceptions``)."""

from __future__ import annotations

__all__ = ["CancelationException"]


class CancelationException(BaseException):
    """Raised inside a synchronous ``run``/``predict`` when its prediction is canceled.

    A ``BaseException`` so that a model's broad ``except Exception`` does not swallow it.
    """

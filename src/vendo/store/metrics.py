"""A finished prediction's metrics: :func:`vendo.status.final_metrics`, named here for
the store's callers (the computation lives in the vocabulary that serve-model shares
without loading the store)."""

from __future__ import annotations

from vendo.status import final_metrics

__all__ = ["final_metrics"]

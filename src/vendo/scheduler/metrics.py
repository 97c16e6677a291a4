"""What the scheduler counts for ``GET /metrics``: predictions ended per pool and
status, and how long they took. Gauges (queue depth, instances by state) are read from
the pools at scrape time (:meth:`vendo.scheduler.Scheduler.pool_states`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["SchedulerMetrics"]

# Seconds: quick models to long generations.
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class SchedulerMetrics:
    """The scheduler's counters, in a registry of their own (one per scheduler: tests
    run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.predictions = Counter(
            "vendo_predictions",
            "Predictions that reached a terminal state, by pool and status.",
            ["pool", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "vendo_prediction_duration_seconds",
            "Seconds from a prediction's start on a runner to its end (predict_time).",
            ["pool"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._counters: dict[tuple[str, str], Any] = {}
        self._timers: dict[str, Any] = {}

    def ended(self, pool: str, status: str, seconds: float | None) -> None:
        # labelled children made once: labels() costs more than the count (every run)
        counter = self._counters.get((pool, status))
        if counter is None:
            counter = self._counters[pool, status] = self.predictions.labels(pool, status)
        counter.inc()
        if seconds is not None:
            timer = self._timers.get(pool)
            if timer is None:
                timer = self._timers[pool] = self.duration.labels(pool)
            timer.observe(seconds)

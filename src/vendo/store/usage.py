"""Usage and credit: what an account's models and predictions used, what it costs, and
what is left of its credit. The billing policy lives here and nowhere else.

The policy is Replicate's (docs/usage.md):

- a **public model's shared pool**: only the *active* time of the predictions (and
  trainings) that *succeeded* or were *canceled* is billed, to whoever created them,
  at the model's hardware price; setting up, idle time and failed runs are free;
- a **private model**, or a **deployment**: the whole life of its runner instances
  (setting up + idle + active) is billed to its owner, whatever the runs' outcome.

Two records feed it: each runner instance's seconds per state (``instance_usage``,
written by :mod:`vendo.scheduler.metering`) and each prediction's
``metrics.predict_time``. Prices come from the hardware catalogue, passed in by the
caller, so that changing a price reprices past usage too (the records hold seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from vendo.store.database import Database
from vendo.store.ids import utcnow
from vendo.store.tables import CreditRow, InstanceUsageRow, ModelRow, PredictionRow

__all__ = [
    "BILLED_RUN_STATUSES",
    "GROUPS",
    "STATES",
    "Balance",
    "GroupBy",
    "Prices",
    "Usage",
    "UsageGroup",
]

GroupBy = Literal["day", "model", "hardware", "deployment"]
GROUPS: tuple[str, ...] = ("day", "model", "hardware", "deployment")
STATES: tuple[str, ...] = ("setting_up", "idle", "active")
# a shared pool's run is billed when it succeeded or was canceled (up to the cancel)
BILLED_RUN_STATUSES = ("succeeded", "canceled")


class Prices(Protocol):
    """What usage needs of the hardware catalogue (:class:`vendo.hardware.Catalog`)."""

    def price(self, sku: str) -> Decimal: ...


@dataclass
class UsageGroup:
    """Seconds per state and their cost, for one group (a day, a model, ...)."""

    key: str | None
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATES, 0.0))
    cost: Decimal = Decimal(0)

    def add(self, state: str, seconds: float, price: Decimal) -> None:
        self.seconds[state] += seconds
        self.cost += Decimal(repr(seconds)) * price

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "setup_seconds": round(self.seconds["setting_up"], 3),
            "idle_seconds": round(self.seconds["idle"], 3),
            "active_seconds": round(self.seconds["active"], 3),
            "total_seconds": round(self.total_seconds, 3),
            "cost": float(round(self.cost, 6)),
        }


@dataclass(frozen=True)
class Balance:
    """An account's credit: what was set (None: unlimited), when, and what is left."""

    amount: Decimal | None
    set_at: datetime | None
    remaining: Decimal | None

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


def _day(column: Any) -> Any:
    return sa.func.date(column)


def _instance_key(group_by: str) -> Any:
    c = InstanceUsageRow
    keys = {
        "day": _day(c.started_at),
        "model": c.model,
        "hardware": c.hardware,
        "deployment": c.deployment,
    }
    return keys[group_by]


def _run_key(group_by: str) -> Any:
    keys = {
        "day": _day(PredictionRow.created_at),
        "model": PredictionRow.model,
        "hardware": ModelRow.hardware,
        "deployment": PredictionRow.deployment,
    }
    return keys[group_by]


def _key_text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class Usage:
    """Instance time records, usage reports and credit."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- records ------------------------------------------------------------------

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert instance time rows (``instance_usage`` columns) in one statement."""
        if rows:
            with self._db.write() as s:
                s.execute(sa.insert(InstanceUsageRow), list(rows))

    # --- reports ------------------------------------------------------------------

    def report(
        self,
        account_id: int,
        start: datetime,
        end: datetime,
        group_by: str,
        prices: Prices,
    ) -> list[UsageGroup]:
        """The account's billed usage from ``start`` (included) to ``end`` (excluded),
        one :class:`UsageGroup` per key of ``group_by``, sorted by key."""
        groups: dict[str | None, UsageGroup] = {}
        for key, hardware, state, seconds in self._billed(account_id, start, end, group_by):
            text = _key_text(key)
            group = groups.setdefault(text, UsageGroup(text))
            group.add(state, float(seconds or 0.0), prices.price(hardware))
        return sorted(groups.values(), key=lambda g: (g.key is None, g.key or ""))

    def cost(self, account_id: int, start: datetime, end: datetime, prices: Prices) -> Decimal:
        """What the account's billed usage from ``start`` to ``end`` costs."""
        groups = self.report(account_id, start, end, "hardware", prices)
        return sum((g.cost for g in groups), Decimal(0))

    def _billed(
        self, account_id: int, start: datetime, end: datetime, group_by: str
    ) -> Iterable[tuple[Any, str, str, float]]:
        """(group key, hardware sku, state, seconds) rows: the policy, as two queries."""
        u = InstanceUsageRow
        key = _instance_key(group_by)
        # private models and deployments: every second of their instances, to the owner
        instances = (
            sa.select(key, u.hardware, u.state, sa.func.sum(u.seconds))
            .where(
                u.owner_id == account_id,
                u.started_at >= start,
                u.started_at < end,
                u.shared == sa.false(),
            )
            .group_by(key, u.hardware, u.state)
        )
        # a public model's shared pool: the active time of the caller's billed runs
        p, run_key = PredictionRow, _run_key(group_by)
        predict_time = p.metrics["predict_time"].as_float()
        runs = (
            sa.select(run_key, ModelRow.hardware, sa.func.sum(predict_time))
            .join(ModelRow, ModelRow.id == p.model_id)
            .where(
                p.owner_id == account_id,
                p.created_at >= start,
                p.created_at < end,
                p.deployment.is_(None),
                p.status.in_(BILLED_RUN_STATUSES),
                ModelRow.visibility == "public",
            )
            .group_by(run_key, ModelRow.hardware)
        )
        with self._db.read() as s:
            found: list[tuple[Any, str, str, float]] = [
                (k, hw, state, secs) for k, hw, state, secs in s.execute(instances)
            ]
            found += [(k, hw, "active", secs) for k, hw, secs in s.execute(runs)]
        return found

    # --- credit -------------------------------------------------------------------

    def set_credit(self, account_id: int, amount: Decimal | None) -> None:
        """Set the account's credit to ``amount`` from now on; None: unlimited."""
        with self._db.write() as s:
            s.execute(sa.delete(CreditRow).where(CreditRow.account_id == account_id))
            if amount is not None:
                s.add(CreditRow(account_id=account_id, amount=amount, set_at=utcnow()))

    def credit(self, account_id: int) -> CreditRow | None:
        with self._db.read() as s:
            return s.get(CreditRow, account_id)

    def limited_accounts(self) -> list[int]:
        """The accounts that have a credit set."""
        with self._db.read() as s:
            return list(s.scalars(sa.select(CreditRow.account_id)))

    def balance(self, account_id: int, prices: Prices) -> Balance:
        """The account's credit and what is left of it now (usage the scheduler has
        not written yet, a few seconds' worth, is not counted)."""
        row = self.credit(account_id)
        if row is None:
            return Balance(None, None, None)
        amount = Decimal(row.amount)
        spent = self.cost(account_id, row.set_at, utcnow(), prices)
        return Balance(amount, row.set_at, amount - spent)

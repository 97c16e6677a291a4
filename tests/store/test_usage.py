"""Usage reports and credit (vendo.store.usage): the billing policy on real records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from vendo.hardware import DEFAULT_SKUS, Catalog
from vendo.store import PredictionRow, Store, new_id, utcnow

PRICES = Catalog(DEFAULT_SKUS)
CPU, T4 = PRICES.price("cpu"), PRICES.price("gpu-t4")
DAY1 = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
DAY2 = datetime(2026, 11, 3, 10, 0, tzinfo=timezone.utc)
START, END = datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(db_url: str):
    s = Store.open(db_url)
    yield s
    s.close()


def _instance(owner_id: int, state: str, seconds: float, at: datetime, **kw: Any) -> dict[str, Any]:
    row = {
        "instance_id": "i1",
        "pool": "version:v",
        "hardware": "gpu-t4",
        "owner_id": owner_id,
        "model": "alice/priv",
        "version_id": "v",
        "deployment": None,
        "shared": False,
        "state": state,
        "started_at": at,
        "ended_at": at + timedelta(seconds=seconds),
        "seconds": seconds,
    }
    row.update(kw)
    return row


def _run(store: Store, owner_id: int, model: Any, status: str, predict_time: float) -> None:
    with store.write() as s:
        s.add(
            PredictionRow(
                id=new_id(),
                owner_id=owner_id,
                model_id=model.id,
                model=f"alice/{model.name}",
                version_id="v",
                status=status,
                created_at=DAY1,
                completed_at=DAY1,
                metrics={"predict_time": predict_time, "total_time": predict_time + 1},
            )
        )


@pytest.fixture
def accounts(store: Store) -> dict[str, Any]:
    alice = store.accounts.create_user("alice")
    bob = store.accounts.create_user("bob")
    public = store.catalog.create_model(alice.id, "pub", visibility="public", hardware="cpu")
    private = store.catalog.create_model(alice.id, "priv", visibility="private", hardware="gpu-t4")
    return {"alice": alice, "bob": bob, "public": public, "private": private}


def test_private_instances_bill_all_their_time_to_the_owner(
    store: Store, accounts: dict[str, Any]
) -> None:
    alice = accounts["alice"]
    store.usage.record(
        [
            _instance(alice.id, "setting_up", 2.0, DAY1),
            _instance(alice.id, "idle", 3.0, DAY1),
            _instance(alice.id, "active", 5.0, DAY2),
            # a public model's shared pool: its time is not billed to anyone
            _instance(alice.id, "idle", 100.0, DAY1, shared=True, hardware="cpu"),
        ]
    )
    [total] = store.usage.report(alice.id, START, END, "hardware", PRICES)
    assert total.key == "gpu-t4"
    assert total.seconds == {"setting_up": 2.0, "idle": 3.0, "active": 5.0}
    assert total.cost == Decimal("10.0") * T4
    by_day = store.usage.report(alice.id, START, END, "day", PRICES)
    assert [(g.key, g.total_seconds) for g in by_day] == [("2026-11-02", 5.0), ("2026-11-03", 5.0)]
    # bob has none of it
    assert store.usage.report(accounts["bob"].id, START, END, "day", PRICES) == []


def test_public_runs_bill_active_time_of_succeeded_and_canceled_runs_to_the_caller(
    store: Store, accounts: dict[str, Any]
) -> None:
    bob, public, private = accounts["bob"], accounts["public"], accounts["private"]
    _run(store, bob.id, public, "succeeded", 1.5)
    _run(store, bob.id, public, "canceled", 0.5)
    _run(store, bob.id, public, "failed", 7.0)  # free
    _run(store, bob.id, private, "succeeded", 9.0)  # billed through the instances
    [group] = store.usage.report(bob.id, START, END, "model", PRICES)
    assert group.key == "alice/pub"
    assert group.seconds == {"setting_up": 0.0, "idle": 0.0, "active": 2.0}
    assert group.cost == Decimal("2.0") * CPU
    # the model's owner pays nothing for bob's runs
    assert store.usage.report(accounts["alice"].id, START, END, "model", PRICES) == []


def test_period_and_deployment_groups(store: Store, accounts: dict[str, Any]) -> None:
    alice = accounts["alice"]
    store.usage.record(
        [
            _instance(alice.id, "idle", 4.0, DAY1, deployment="alice/prod"),
            _instance(alice.id, "idle", 6.0, DAY1),
            _instance(alice.id, "idle", 50.0, END),  # the end is excluded
        ]
    )
    groups = store.usage.report(alice.id, START, END, "deployment", PRICES)
    assert [(g.key, g.seconds["idle"]) for g in groups] == [("alice/prod", 4.0), (None, 6.0)]
    later = store.usage.report(alice.id, DAY2, END + timedelta(days=1), "day", PRICES)
    assert [(g.key, g.total_seconds) for g in later] == [("2026-12-01", 50.0)]


def test_credit_counts_usage_since_it_was_set(store: Store, accounts: dict[str, Any]) -> None:
    alice = accounts["alice"]
    assert store.usage.balance(alice.id, PRICES).amount is None  # unlimited
    store.usage.record([_instance(alice.id, "idle", 1000.0, DAY1)])  # before: not counted
    store.usage.set_credit(alice.id, Decimal("1"))
    balance = store.usage.balance(alice.id, PRICES)
    assert balance.amount == Decimal("1") and balance.remaining == Decimal("1")
    assert not balance.exhausted
    assert store.usage.limited_accounts() == [alice.id]
    store.usage.record([_instance(alice.id, "active", 10000.0, utcnow())])
    balance = store.usage.balance(alice.id, PRICES)
    assert balance.remaining == Decimal(1) - Decimal(10000) * T4
    assert balance.exhausted
    store.usage.set_credit(alice.id, None)
    assert store.usage.balance(alice.id, PRICES).remaining is None
    assert store.usage.limited_accounts() == []

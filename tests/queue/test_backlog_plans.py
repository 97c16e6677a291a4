"""Start-up recovery and the periodic queries cost nothing per queued prediction.

Each operation that runs at start-up or on a timer (recovery, the deadline sweep, the
look for pending versions, claims, owed webhooks, retention) is run against a store
with a backlog; every SQL statement it sends is captured and its plan asked of the
database (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on PostgreSQL after
``ANALYZE``). A plan must reach ``predictions`` and ``jobs`` only through an index
seek, or through a partial index whose rows do not include queued predictions; a full
scan of either table (or of a whole index over them) fails the test. Deterministic:
plans, not timings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from vendo.queue import Queue, claims, insert_prediction
from vendo.status import pool_key
from vendo.store import SUCCEEDED, Store, new_id, utcnow

V1 = "1" * 64
V2 = "2" * 64
QUEUED = 1000  # enough rows that PostgreSQL's planner prefers an index when it has one
# Partial indexes that hold no queued prediction: reading one whole is fine.
BOUNDED = {"ix_jobs_claimed", "ix_predictions_webhook_owed"}
BIG = {"predictions", "jobs"}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    yield s
    s.close()


def _fill(store: Store) -> dict[str, list[str]]:
    """A backlog: QUEUED predictions queued over two versions (a tenth with a deadline
    to come, a third with a webhook), two claimed (one running), a few finished."""
    user = store.accounts.create_user("u")
    now = utcnow()
    made: dict[str, list[str]] = {"queued": [], "claimed": [], "finished": []}
    with store.transaction() as conn:
        for i in range(QUEUED + 2):
            pid = new_id()
            values: dict[str, Any] = {
                "id": pid,
                "owner_id": user.id,
                "model": "u/m",
                "version_id": V1 if i % 2 else V2,
                "input": {},
                "created_at": now,
                "deadline": now + timedelta(hours=1) if i % 10 == 0 else None,
                "webhook": "http://127.0.0.1:9/hook" if i % 3 == 0 else None,
            }
            claimed = "worker-a" if i >= QUEUED else None
            job = {
                "kind": "predict",
                "prediction_id": pid,
                "version_id": values["version_id"],
                "pool": pool_key(values["version_id"]),
                "state": "claimed" if claimed else "queued",
                "created_at": now,
                "claimed_by": claimed,
                "claimed_at": now if claimed else None,
            }
            insert_prediction(conn, values, job)
            made["claimed" if claimed else "queued"].append(pid)
    store.predictions.mark_started(made["claimed"][-1])
    for _ in range(5):
        pid = new_id()
        values = {"id": pid, "owner_id": user.id, "model": "u/m", "version_id": V1,
                  "input": {}, "created_at": now, "webhook": "http://127.0.0.1:9/hook"}  # fmt: skip
        with store.transaction() as conn:
            insert_prediction(conn, values)
        store.predictions.finish(pid, SUCCEEDED, at=now - timedelta(days=2))
        made["finished"].append(pid)
    if store.dialect == "postgresql":
        with store.transaction() as conn:
            conn.exec_driver_sql("ANALYZE predictions")
            conn.exec_driver_sql("ANALYZE jobs")
    return made


@contextmanager
def _statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """Every reading or changing statement sent to the database meanwhile."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool):
        if not many and re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)\b", statement, re.I):
            seen.append((statement, params))

    engines = {store.engines.reader, store.engines.writer, store.engines.loop_writer}
    for engine in engines - {None}:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines - {None}:
            sa.event.remove(engine, "before_cursor_execute", record)


def _sqlite_plan(store: Store, statement: str, params: Any) -> tuple[list[str], set[str]]:
    """(problems, indexes used) of one statement's SQLite plan."""
    with store.engines.reader.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
    problems: list[str] = []
    used: set[str] = set()
    for row in rows:
        detail = str(row[3])
        index = re.search(r"USING (?:COVERING )?INDEX (\w+)", detail)
        if index:
            used.add(index.group(1))
        # aliases in vendo.queue's skip scan: ``jobs j``
        scan = re.match(r"SCAN (\w+)", detail)
        bounded = index is not None and index.group(1) in BOUNDED
        if scan and scan.group(1) in BIG | {"j"} and not bounded:
            problems.append(detail)
    return problems, used


def _postgres_plan(store: Store, statement: str, params: Any) -> tuple[list[str], set[str]]:
    with store.engines.reader.connect() as conn:
        raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar()
    plan = raw if isinstance(raw, list) else json.loads(raw)
    problems: list[str] = []
    used: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        relation = node.get("Relation Name")
        index = node.get("Index Name")
        if index:
            used.add(index)
        if relation in BIG and node["Node Type"] == "Seq Scan":
            problems.append(f"Seq Scan on {relation}")
        # an index read without a condition reads the whole index
        if index and index not in BOUNDED and "Index Cond" not in node:
            problems.append(f"{node['Node Type']} of all of {index}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return problems, used


def _check(store: Store, operation: Callable[[], Any], *expected: str) -> None:
    """Run ``operation``; each of its statements must pass the plan rules, and
    together they must use each of the ``expected`` indexes."""
    with _statements(store) as seen:
        operation()
    assert seen, "the operation sent no statement"
    plan = _sqlite_plan if store.dialect == "sqlite" else _postgres_plan
    used: set[str] = set()
    for statement, params in seen:
        problems, indexes = plan(store, statement, params)
        assert not problems, f"full scan in\n{statement}\n{problems}"
        used |= indexes
    missing = set(expected) - used
    assert not missing, f"{missing} not used; used {used}"


def test_periodic_queries_use_indexes_not_scans(store: Store) -> None:
    _fill(store)
    queue = Queue(store)
    now = utcnow()
    _check(store, lambda: store.predictions.overdue(now), "ix_predictions_deadline")
    # still found when due: the index holds the deadline of every queued prediction
    assert len(store.predictions.overdue(now + timedelta(hours=2))) == (QUEUED + 2 + 9) // 10
    _check(store, queue.pending_pools, "ix_jobs_claim")
    assert set(queue.pending_pools()) == {pool_key(V1), pool_key(V2)}
    _check(store, store.predictions.owed_webhooks, "ix_predictions_webhook_owed")
    _check(
        store,
        lambda: store.predictions.remove_data(now - timedelta(days=1)),
        "ix_predictions_retention",
    )

    def claim() -> None:
        with store.transaction() as conn:
            claimed, more = claims.claim(pool_key(V1), 4, "worker-b")(conn)
        assert len(claimed) == 4 and more

    _check(store, claim, "ix_jobs_claim")
    _check(store, lambda: queue.claim(pool_key(V2), 2), "ix_jobs_claim")


@pytest.mark.parametrize("worker", [None, "worker-a"])
def test_recovery_reads_claimed_jobs_only(store: Store, worker: str | None) -> None:
    made = _fill(store)
    queue = Queue(store)
    report = None

    def recover() -> None:
        nonlocal report
        report = queue.recover(worker)

    _check(store, recover, "ix_jobs_claimed")
    assert report is not None
    running, requeued = made["claimed"][-1], made["claimed"][0]
    assert report.requeued == [requeued] and report.failed == [running]
    assert report.dropped == []


def test_owed_webhook_index_leaves_queued_predictions_out(store: Store) -> None:
    """A queued prediction with a webhook is not owed one yet: the partial index that
    start-up reads must not hold it (else it grows with the queue)."""
    with store.engines.reader.connect() as conn:
        if store.dialect == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_predictions_webhook_owed'"
        else:
            sql = (
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname = 'ix_predictions_webhook_owed'"
            )
        definition = str(conn.exec_driver_sql(sql).scalar())
    assert "status" in definition and "succeeded" in definition, definition

from __future__ import annotations

import threading

import pytest

from vendo.queue import INTERRUPTED_ERROR, Queue
from vendo.status import pool_key
from vendo.store import CANCELED, FAILED, STARTING, PredictionRow, Store, new_id, utcnow

V1 = "1" * 64
V2 = "2" * 64
P1, P2 = pool_key(V1), pool_key(V2)  # the versions' shared pools


@pytest.fixture
def store(db_url: str):
    s = Store.open(db_url)
    yield s
    s.close()


def _submit(queue: Queue, owner: int, version: str = V1) -> str:
    row = PredictionRow(
        id=new_id(), owner_id=owner, model="o/n", version_id=version, input={}, created_at=utcnow()
    )
    queue.submit(row)
    return row.id


def test_claim_is_oldest_first_per_version(store: Store) -> None:
    user = store.accounts.create_user("u")
    queue = Queue(store)
    ids = [_submit(queue, user.id) for _ in range(3)]
    other = _submit(queue, user.id, V2)
    assert queue.depth(P1) == 3
    assert queue.pending_pools() == [P1, P2]
    first = queue.claim(P1, 2)
    assert [j.prediction_id for j in first] == ids[:2]
    assert [j.prediction_id for j in queue.claim(P1, 5)] == ids[2:]
    assert queue.claim(P1, 5) == []
    assert [j.prediction_id for j in queue.claim(P2, 1)] == [other]
    queue.complete(first[0].id)
    assert store.predictions.job(ids[0]) is None


def test_concurrent_claims_never_double_claim(db_url: str) -> None:
    setup = Store.open(db_url)
    user = setup.accounts.create_user("u")
    queue = Queue(setup)
    ids = {_submit(queue, user.id) for _ in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        # Own store per worker: separate connection pools, as separate agents would have.
        own = Store.open(db_url, migrate=False)
        q = Queue(own, worker_id=f"w{n}")
        try:
            while True:
                jobs = q.claim(P1, 3)
                if not jobs:
                    return
                with lock:
                    claimed.extend(j.prediction_id for j in jobs)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    setup.close()
    assert not errors
    assert sorted(claimed) == sorted(ids)


def test_cancel_queued(store: Store) -> None:
    user = store.accounts.create_user("u")
    queue = Queue(store)
    pid = _submit(queue, user.id)
    row = queue.cancel_queued(pid)
    assert row is not None and row.status == CANCELED
    assert queue.claim(P1, 1) == []
    # once claimed, cancel_queued leaves it to the scheduler
    pid2 = _submit(queue, user.id)
    queue.claim(P1, 1)
    assert queue.cancel_queued(pid2) is None
    assert store.predictions.get(pid2).status == STARTING  # type: ignore[union-attr]


def test_recover_requeues_starting_and_fails_processing(store: Store) -> None:
    user = store.accounts.create_user("u")
    queue = Queue(store)
    queued = _submit(queue, user.id)
    claimed = _submit(queue, user.id)
    running = _submit(queue, user.id)
    jobs = queue.claim(P1, 3)
    queue.requeue(jobs[0].id)  # the first goes back: still queued
    store.predictions.mark_started(running)
    report = queue.recover()
    assert report.requeued == [claimed]
    assert report.failed == [running]
    failed = store.predictions.get(running)
    assert failed is not None and failed.status == FAILED and failed.error == INTERRUPTED_ERROR
    assert [j.prediction_id for j in queue.claim(P1, 5)] == [queued, claimed]


def test_submit_counts_the_run_in_the_same_transaction(store: Store) -> None:
    user = store.accounts.create_user("u")
    model = store.catalog.create_model(user.id, "m")
    row = PredictionRow(
        id=new_id(), owner_id=user.id, model="u/m", model_id=model.id, version_id=V1,
        input={}, created_at=utcnow(),
    )  # fmt: skip
    Queue(store).submit(row, count_run=True)
    found = store.catalog.model_by_id(model.id)
    assert found is not None and found.run_count == 1
    assert store.predictions.job(row.id) is not None

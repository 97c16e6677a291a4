"""The scheduler: claims queued jobs and runs them on the versions' runner pools.

One :class:`Scheduler` runs per serve process (in scaled mode, per agent). Its loop
wakes on :meth:`Scheduler.notify` (a new prediction, a freed slot) or on a short tick
(deadlines, missed notifications), claims at most the free slots of each version's
pool, and runs each claimed job in its own task:

    claimed job -> pool.runner() (cold start if needed) -> slot -> predict
        runner events -> event bus at once; store writes -> BatchWriter (group commit)

Jobs beyond a version's slots stay queued in the database until a slot frees; they are
never refused. Every run ends in exactly one terminal state, written in the same
transaction that deletes its job; ``done`` is published after that commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from vendo.config import Settings
from vendo.errors import RunnerError, SecretsKeyError
from vendo.queue import (
    INTERRUPTED_ERROR,
    EventBus,
    Job,
    Queue,
    insert_prediction,
    new_job,
    prediction_values,
)
from vendo.runner.protocol import FILE_KEY
from vendo.scheduler import writes
from vendo.scheduler.pool import PoolOptions, RunnerPool
from vendo.scheduler.process import (
    WORKER_EXITED,
    RunnerProcess,
    RunnerSpec,
    Slot,
    handoff_error,
)
from vendo.scheduler.writes import BatchWriter, Claimed
from vendo.store import (
    CANCELED,
    FAILED,
    PROCESSING,
    STARTING,
    SUCCEEDED,
    TERMINAL,
    Store,
    utcnow,
)
from vendo.store.sealing import SecretBox, is_sealed
from vendo.store.tables import PredictionRow, VersionRow

__all__ = ["Scheduler", "runner_spec"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TICK = 0.5  # seconds between deadline checks when nothing else wakes the loop
DEADLINE_REASON = "deadline"
# A run that ends within this many seconds goes from ``starting`` to its terminal state
# in one write; a longer one is marked ``processing`` after it.
START_DELAY = 0.005
OUTCOME_KEEP = 60.0  # seconds outcome() remembers a finished run
OUTCOME_MAX = 10_000


def runner_spec(version: VersionRow) -> RunnerSpec:
    """How to start a runner for ``version``, from what push recorded.

    ``version.environment`` is what the build returned (``python``, ``runtime_path``,
    ``env``); ``version.config`` the parsed cog.yaml (``predict``, ``concurrency_max``,
    ``environment``).
    """
    env_info = version.environment or {}
    config = version.config or {}
    python = env_info.get("python")
    ref = config.get("predict")
    if not python or not ref or not version.package_path:
        raise RunnerError(f"version {version.id} has no built environment to run")
    env: dict[str, str] = {}
    env.update({str(k): str(v) for k, v in (config.get("environment") or {}).items()})
    env.update({str(k): str(v) for k, v in (env_info.get("env") or {}).items()})
    env_dir = env_info.get("env_dir")
    if env_dir and "PATH" not in env:
        # tools the model installed (console scripts) come first, as in the build
        env["PATH"] = os.pathsep.join([str(Path(env_dir) / "bin"), os.environ.get("PATH", "")])
    runtime = env_info.get("runtime_path")
    cmax = config.get("concurrency_max")
    return RunnerSpec(
        project=Path(version.package_path),
        ref=str(ref),
        python=str(python),
        runtime_path=Path(runtime) if runtime else None,
        # None (no concurrency.max in cog.yaml) lets @concurrent(max=...) decide
        max_concurrency=None if cmax is None else int(cmax),
        env=env,
    )


def _is_iterator(schema: dict[str, Any] | None) -> bool:
    output = ((schema or {}).get("components") or {}).get("schemas", {}).get("Output") or {}
    return output.get("x-cog-array-type") == "iterator"


@dataclass
class _Run:
    """One claimed job while it runs here."""

    job: Job
    pool: RunnerPool
    claimed: Claimed | None = None
    runner: RunnerProcess | None = None
    cancel_reason: str | None = None
    canceled: asyncio.Event | None = None  # made when first needed (most runs never)
    requeue: bool = False  # give the job back instead of completing it
    # With a webhook the relay reads the row on each event: publish after the write.
    ordered: bool = False
    started_at: datetime | None = None
    start_written: bool = False
    start_timer: asyncio.TimerHandle | None = None
    logs: list[str] = field(default_factory=list)  # not yet handed to the writer
    all_logs: list[str] = field(default_factory=list)  # the whole text, for outcome()
    logs_queued: bool = False
    outputs: list[Any] = field(default_factory=list)  # every iterator item so far
    outputs_written: int = 0
    outputs_queued: bool = False
    # Runner events wait here while an output file is being stored (keeps their order).
    backlog: deque[dict[str, Any]] = field(default_factory=deque)
    storing: asyncio.Event | None = None
    slot_released: bool = False
    job_done: bool = False
    # A deferred run (see Scheduler.submit) keeps its prediction here, unwritten, until
    # it ends or Scheduler.persist() is called; ``written`` is the insert on its way.
    unwritten: dict[str, Any] | None = None
    count_model: int | None = None
    written: asyncio.Future[Any] | None = None
    ended: asyncio.Future[None] | None = None  # a deferred run's end, for its waiter

    async def unless_canceled(self, awaitable: Any) -> Any:
        """Await ``awaitable`` (a cold start, a free slot) unless a cancel comes first;
        then return None and let the awaited work go on for the next job."""
        if self.canceled is None:
            self.canceled = asyncio.Event()
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.ensure_future(self.canceled.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.add_done_callback(_release_unused_slot)
        return None


def _failed_handoff(slot: Slot, error: str) -> asyncio.Future[dict[str, Any]]:
    """The answer of a prediction its runner never took: its slot goes back (a no-op once
    predict() used it) and it ends failed like any run."""
    slot.release()
    failed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    failed.set_result({"status": FAILED, "error": error, "output": None})
    return failed


def _release_unused_slot(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is None and isinstance(task.result(), Slot):
        task.result().release()


class Scheduler:
    """Runner pools per version, fed from the durable queue."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: EventBus,
        storage: Any = None,
        *,
        queue: Queue | None = None,
        spec_for: Callable[[VersionRow], RunnerSpec] = runner_spec,
        tick: float = TICK,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.storage = storage
        self.queue = queue or Queue(store)
        self._spec_for = spec_for
        self._tick = tick
        self._options = PoolOptions(
            idle_timeout=settings.idle_timeout,
            setup_timeout=settings.setup_timeout,
            cancel_grace=settings.cancel_grace,
            max_restarts=settings.max_restarts,
        )
        self._pools: dict[str, RunnerPool] = {}
        self._iterators: dict[str, bool] = {}  # version id -> its Output is an iterator
        self._dirty: set[str] = set()
        # Versions that may have queued jobs: notified, or their last claim was full. A
        # freed slot claims only for these, so a quiet version costs no empty claims.
        self._maybe_queued: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._runs: dict[str, _Run] = {}
        # Deferred runs (see submit) until they are written and their waiter told.
        self._deferred: dict[str, _Run] = {}
        # What recent runs ended with, as written: see outcome().
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._outcome_order: deque[tuple[float, str]] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        # The store is blocking. The scheduler has its own threads for it: its writes
        # never queue behind (or starve) the HTTP server's thread pool.
        self._executor: ThreadPoolExecutor | None = None
        # The per-prediction writes (claims, start, logs, outputs, the end) share
        # transactions: see vendo.scheduler.writes.
        self._writer = BatchWriter(store)
        self._secrets: SecretBox | None = None  # opens sealed secret inputs, made when needed

    async def _blocking(self, func: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(4, thread_name_prefix="vendo-scheduler")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args))

    # --- public interface ----------------------------------------------------------

    async def start(self) -> None:
        """Recover jobs left by a stopped server, then start claiming."""
        self._wake = asyncio.Event()
        # Embedded (SQLite): this is the only claimer, so every claimed job is ours. On
        # PostgreSQL other agents may be running theirs: recover only our own.
        owner = None if self.store.dialect == "sqlite" else self.queue.worker_id
        recovery = await self._blocking(self.queue.recover, owner)
        if recovery.failed:
            log.warning("%d predictions were interrupted by a restart", len(recovery.failed))
        for version_id in await self._blocking(self.queue.pending_versions):
            self._dirty.add(version_id)
            self._maybe_queued.add(version_id)
        self._loop_task = asyncio.create_task(self._loop(), name="vendo-scheduler")

    async def stop(self) -> None:
        """Stop claiming, let running predictions end briefly, stop every runner."""
        self._stopping = True
        if self._loop_task is not None:
            # The loop checks the flag; cancel too, but never rely on it alone
            # (3.11's wait_for can swallow a cancellation that races a wake-up).
            if self._wake is not None:
                self._wake.set()
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        # shutdown lets the children finish in-flight work (within close()'s timeout)
        await asyncio.gather(*(p.close() for p in self._pools.values()), return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._pools.clear()
        await self._writer.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def notify(self, version_id: str) -> None:
        """A job for ``version_id`` was queued: claim soon."""
        self._maybe_queued.add(version_id)
        self._kick(version_id)

    async def submit(
        self,
        prediction: PredictionRow,
        kind: str = "predict",
        *,
        count_run: bool = False,
        defer: bool = False,
    ) -> asyncio.Future[None] | None:
        """Queue ``prediction`` and its job durably (returns once committed), then run it:
        what ``queue.submit(...)`` + :meth:`notify` do, in fewer round trips.

        The insert joins the scheduler's next write batch (one transaction for many
        concurrent submits, finishes and claims). When the version's warm runner has a
        free slot and no job of the version may be waiting, the job is inserted already
        claimed and starts at once: no separate claim transaction, no read.

        ``defer`` is for a caller that waits for the end (``Prefer: wait``): when the
        prediction can start at once and has no webhook, it starts without being written,
        and is written once, as it ends, before the returned future resolves. Until
        then nothing is published on the bus either: no one else knows its id. A caller
        that stops waiting before that must call :meth:`persist` before it tells anyone
        the id. Otherwise (and without ``defer``) returns None, once the prediction is
        durably queued.
        """
        version_id = prediction.version_id
        pool = self._pools.get(version_id)
        direct = (
            kind == "predict"
            and pool is not None
            and self._wake is not None
            and not self._stopping
            and version_id not in self._maybe_queued
            and pool.free_slots > 0
            and pool.ready() is not None
        )
        if pool is not None and direct and defer and not prediction.webhook:
            pool.reserve()
            run = self._new_run(pool, prediction, 0, kind)
            # The child starts now, not a loop turn later, and works while we go on (its
            # events cannot arrive before this returns to the loop).
            runner = pool.ready()
            slot = runner.acquire_slot() if runner is not None else None
            sent = None
            if runner is not None and slot is not None:
                if self._should_not_start(run, prediction.deadline):
                    slot.release()
                else:
                    sent = self._send_predict(run, runner, slot)
            run.unwritten = prediction_values(prediction)
            run.count_model = prediction.model_id if count_run else None
            run.ended = asyncio.get_running_loop().create_future()
            self._runs[prediction.id] = run
            self._deferred[prediction.id] = run
            self._spawn(self._run(run, sent))
            return run.ended
        if pool is not None and direct:
            pool.reserve()
        claimed_by = self.queue.worker_id if direct else None
        try:
            job_id: int = await self._writer.submit(
                functools.partial(
                    self.queue.submit_in,
                    prediction=prediction,
                    kind=kind,
                    count_run=count_run,
                    claimed_by=claimed_by,
                )
            )
        except BaseException:
            if pool is not None and direct:
                pool.release()
            raise
        if pool is None or not direct:
            self.notify(version_id)
            return None
        if self._stopping:
            # claimed but never started: the next start requeues it (Queue.recover)
            pool.release()
            return None
        run = self._new_run(pool, prediction, job_id, kind)
        self._runs[prediction.id] = run
        self._spawn(self._run(run))
        return None

    def _new_run(self, pool: RunnerPool, prediction: PredictionRow, job_id: int, kind: str) -> _Run:
        job = Job(job_id, kind, prediction.id, prediction.version_id, prediction.created_at)
        claimed = Claimed(
            job,
            STARTING,
            prediction.run_input,
            prediction.deadline,
            prediction.owner_id,
            prediction.created_at,
            None,
            prediction.metrics,
            prediction.webhook,
        )
        return _Run(job, pool, claimed, ordered=bool(prediction.webhook))

    async def persist(self, prediction_id: str) -> None:
        """Make a deferred prediction (see :meth:`submit`) durable now, as it stands
        (queued or running, its logs and outputs so far), and return once it is; from
        then on it is written like any other. Returns at once for one already written."""
        run = self._deferred.get(prediction_id)
        if run is None:
            return
        if run.unwritten is not None:
            self._write_unwritten(run)
            # From now on its id may be known: the bus gets what it missed, then the rest.
            if run.started_at is not None:
                self.bus.publish(prediction_id, "start", {})
            if run.all_logs:
                self.bus.publish(prediction_id, "logs", "".join(run.all_logs))
            for item in run.outputs:
                self.bus.publish(prediction_id, "output", item)
        if run.written is not None:
            await asyncio.shield(run.written)

    def _write_unwritten(self, run: _Run, end: dict[str, Any] | None = None) -> None:
        """Insert a deferred run's prediction: with ``end`` (its terminal columns) as
        finished, else as it is now, with its job (claimed by us, or queued again when
        ``run.requeue``)."""
        values, run.unwritten = run.unwritten, None
        assert values is not None
        pid = run.job.prediction_id
        job: dict[str, Any] | None = None
        if end is not None:
            values.update(end, run_input=None)
        else:
            values["status"] = PROCESSING if run.started_at is not None else STARTING
            values["started_at"] = run.started_at
            values["logs"] = "".join(run.all_logs)
            if run.outputs:
                values["output"] = list(run.outputs)
            # what went into the insert needs no write of its own
            run.logs, run.outputs_written = [], len(run.outputs)
            run.start_written = run.started_at is not None
            claimed_by = None if run.requeue else self.queue.worker_id
            job = new_job(run.job.kind, pid, run.job.version_id, claimed_by)
        count_model, run.count_model = run.count_model, None
        future = self._writer.submit(
            functools.partial(insert_prediction, values=values, job=job, count_model=count_model),
            # Alone, its waiter answers as soon as it is written; with other runs about,
            # it had better share their next batch (one commit for many).
            eager=end is not None and len(self._runs) <= 1,
        )
        run.written = future

        def inserted(f: asyncio.Future[Any]) -> None:
            if f.cancelled() or f.exception() is not None:
                log.error("prediction %s: could not be recorded: %s", pid, f.exception())
            elif job is not None:
                run.job = replace(run.job, id=f.result())

        future.add_done_callback(inserted)

    def _kick(self, version_id: str) -> None:
        self._dirty.add(version_id)
        if self._wake is not None:
            self._wake.set()

    async def cancel(self, prediction_id: str, reason: str = "canceled") -> bool:
        """Cancel a queued or running prediction. False when it is neither (finished,
        unknown, or claimed by another scheduler)."""
        run = self._runs.get(prediction_id)
        if run is not None:
            run.cancel_reason = run.cancel_reason or reason
            if run.canceled is None:
                run.canceled = asyncio.Event()
            run.canceled.set()
            if run.runner is not None:
                run.runner.cancel(prediction_id)
            return True
        row = await self._blocking(self.queue.cancel_queued, prediction_id, reason)
        if row is None:
            return False
        self._publish_terminal(row)
        return True

    # --- introspection (tests, metrics) -----------------------------------------------

    def pool(self, version_id: str) -> RunnerPool | None:
        return self._pools.get(version_id)

    def running(self) -> list[str]:
        return list(self._runs)

    def outcome(self, prediction_id: str) -> dict[str, Any] | None:
        """How a prediction this scheduler ran ended, as written to the store: ``status``,
        ``output`` (stored form), ``error``, ``logs``, ``metrics``, ``started_at``,
        ``completed_at``, ``cancel_reason``. None when unknown here or forgotten
        (:data:`OUTCOME_KEEP` seconds after the end). Available once ``done`` is
        published, so that ``Prefer: wait`` can answer from the row it inserted plus
        this, without reading the prediction back. The dict is shared: do not change it.
        """
        return self._outcomes.get(prediction_id)

    def _remember(self, prediction_id: str, outcome: dict[str, Any]) -> None:
        now = time.monotonic()
        order = self._outcome_order
        while order and (now - order[0][0] > OUTCOME_KEEP or len(order) >= OUTCOME_MAX):
            self._outcomes.pop(order.popleft()[1], None)
        self._outcomes[prediction_id] = outcome
        order.append((now, prediction_id))

    @property
    def writer(self) -> BatchWriter:
        """The group-committing writer (its ``batches`` and ``writes`` counters)."""
        return self._writer

    # --- the loop ---------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        last_sweep = 0.0
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick)
            self._wake.clear()
            if self._stopping:
                return
            try:
                # claim first: a new job should not wait behind the deadline sweep
                dirty, self._dirty = self._dirty, set()
                for version_id in dirty:
                    await self._fill(version_id)
                now = loop.time()
                if now - last_sweep >= self._tick:
                    last_sweep = now
                    await self._enforce_deadlines()
                    await self._look_for_unnotified_jobs()
            except asyncio.CancelledError:
                raise
            except Exception:
                # a database hiccup must not stop scheduling for good
                log.exception("scheduler iteration failed; retrying")
                await asyncio.sleep(self._tick)

    async def _fill(self, version_id: str) -> None:
        pool = self._pools.get(version_id)
        if pool is None:
            version = await self._blocking(self.store.catalog.version, version_id)
            try:
                if version is None:
                    raise RunnerError(f"version {version_id} does not exist")
                spec = self._spec_for(version)
            except RunnerError as exc:
                await self._fail_unrunnable(version_id, exc.detail)
                return
            pool = RunnerPool(version_id, spec, self._options)
            self._pools[version_id] = pool
            self._iterators[version_id] = _is_iterator(version.openapi_schema)
        free = pool.free_slots
        if free <= 0 or self._stopping or version_id not in self._maybe_queued:
            return
        self._maybe_queued.discard(version_id)
        # Reserve before the claim commits: a notify meanwhile must not claim them twice.
        for _ in range(free):
            pool.reserve()
        try:
            claimed, more = await self._writer.submit(
                writes.claim(version_id, free, self.queue.worker_id)
            )
        except BaseException:
            for _ in range(free):
                pool.release()
            self._maybe_queued.add(version_id)
            raise
        for _ in range(free - len(claimed)):
            pool.release()
        if more:
            self._maybe_queued.add(version_id)
        for item in claimed:
            run = _Run(item.job, pool, item, ordered=bool(item.webhook))
            self._runs[item.job.prediction_id] = run
            self._spawn(self._run(run))

    async def _fail_unrunnable(self, version_id: str, error: str) -> None:
        # Claim and fail everything queued for a version that cannot run at all.
        while jobs := await self._blocking(self.queue.claim, version_id, 100):
            for job in jobs:
                row = await self._blocking(self._fail_now, job.prediction_id, error)
                await self._blocking(self.queue.complete, job.id)
                if row is not None:
                    self._publish_terminal(row)

    def _fail_now(self, prediction_id: str, error: str) -> PredictionRow | None:
        return self.store.predictions.finish(prediction_id, FAILED, error=error)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look_for_unnotified_jobs(self) -> None:
        """Jobs queued without a notify here (another process's API, a lost wake-up)
        are found by one read per tick while some pool has room."""
        if not any(pool.free_slots for pool in self._pools.values()):
            return
        for version_id in await self._blocking(self.queue.pending_versions):
            pool = self._pools.get(version_id)
            if pool is None or pool.free_slots:
                self._maybe_queued.add(version_id)
                self._kick(version_id)

    async def _enforce_deadlines(self) -> None:
        now = utcnow()
        # Runs here first: a deferred one is not in the store to be found.
        for pid, here in list(self._runs.items()):
            deadline = here.claimed.deadline if here.claimed is not None else None
            if deadline is not None and deadline <= now and here.cancel_reason is None:
                await self.cancel(pid, DEADLINE_REASON)
        overdue = await self._blocking(self.store.predictions.overdue, now)
        for row in overdue:
            run = self._runs.get(row.id)
            if run is not None:
                if run.cancel_reason is None:
                    await self.cancel(row.id, DEADLINE_REASON)
                continue
            # queued here or anywhere: cancel_queued is atomic against claims
            await self.cancel(row.id, DEADLINE_REASON)

    # --- one job ----------------------------------------------------------------------

    def _release_slot(self, run: _Run) -> None:
        """The run no longer needs its pool slot: let the next job be claimed now, while
        this one's terminal write is still on its way (it joins the same batch)."""
        if run.slot_released:
            return
        run.slot_released = True
        run.pool.release()
        version_id = run.job.version_id
        # Only a version with jobs that may be waiting needs a claim (a wake of the loop).
        if not self._stopping and version_id in self._maybe_queued:
            self._kick(version_id)

    async def _run(self, run: _Run, sent: asyncio.Future[dict[str, Any]] | None = None) -> None:
        """Run a claimed job to its end; ``sent``: its prediction was already handed to a
        runner (:meth:`_send_predict`), and this is what it will answer."""
        pid = run.job.prediction_id
        keep_job = False
        try:
            if sent is not None:
                await self._predict(run, sent)
            else:
                await self._execute(run)
        except Exception as exc:
            log.exception("prediction %s: scheduler error", pid)
            message = f"internal error: {exc}"
            try:
                if run.unwritten is not None:
                    self._write_unwritten(run)
                if run.written is not None:
                    await asyncio.shield(run.written)
                row = await self._blocking(self._fail_now, pid, message)
            except Exception:
                log.exception("prediction %s: could not record the failure", pid)
                row = None
                # Leave the job claimed: the next start's recovery ends the prediction
                # (recovery looks for claimed jobs, not for predictions without one).
                keep_job = True
            if row is not None:
                self._publish_terminal(row)
        finally:
            if run.start_timer is not None:
                run.start_timer.cancel()
            self._runs.pop(pid, None)
            self._release_slot(run)
            with contextlib.suppress(Exception):
                if run.unwritten is not None:
                    # never started and the server is stopping: queued for the next start
                    self._write_unwritten(run)
                if run.written is not None:
                    await asyncio.shield(run.written)
                if run.job.id and run.requeue:
                    await self._writer.submit(writes.release(run.job.id))
                elif run.job.id and not run.job_done and not keep_job:
                    await self._writer.submit(writes.complete(run.job.id))
            self._deferred.pop(pid, None)
            if run.ended is not None and not run.ended.done():
                run.ended.set_result(None)

    async def _execute(self, run: _Run) -> None:
        job, pool = run.job, run.pool
        pid = job.prediction_id
        claimed = run.claimed
        if claimed is None or claimed.status is None or claimed.status in TERMINAL:
            return
        if claimed.status == PROCESSING:
            # Started under an earlier claim whose server stopped: never run twice (the
            # restart policy), whether or not that server's recovery got to it.
            await self._finish(run, {"status": FAILED, "error": INTERRUPTED_ERROR, "output": None})
            return
        if job.kind != "predict":
            # trainings need a runner in train mode (train.py): not scheduled here yet
            error = f"{job.kind} jobs are not supported by this scheduler yet"
            await self._finish(run, {"status": FAILED, "error": error, "output": None})
            return
        if self._should_not_start(run, claimed.deadline):
            await self._end_unstarted(run)
            return
        # A warm runner with a free slot (the common case) is taken without a wait, and
        # so without the tasks that waiting alongside a cancel takes.
        runner = pool.ready()
        slot = runner.acquire_slot() if runner is not None else None
        if runner is not None and slot is not None:
            await self._predict(run, self._send_predict(run, runner, slot))
            return
        try:
            runner = await run.unless_canceled(pool.runner())
        except RunnerError as exc:
            if self._stopping:
                run.requeue = True
                return
            if pool.last_setup_logs:
                await self._writer.submit(writes.append_logs(pid, pool.last_setup_logs))
                run.all_logs.append(pool.last_setup_logs)
            await self._finish(run, {"status": FAILED, "error": exc.detail, "output": None})
            return
        if runner is None or self._should_not_start(run, claimed.deadline):
            await self._end_unstarted(run)
            return
        try:
            slot = await run.unless_canceled(pool.acquire(runner))
        except RunnerError:
            if not self._stopping:
                raise
            run.requeue = True
            return
        if slot is None or self._should_not_start(run, claimed.deadline):
            if slot is not None:
                slot.release()
            await self._end_unstarted(run)
            return
        await self._predict(run, self._send_predict(run, runner, slot))

    def _send_predict(
        self, run: _Run, runner: RunnerProcess, slot: Slot
    ) -> asyncio.Future[dict[str, Any]]:
        """Hand the run's prediction to ``runner`` in ``slot``; the future is its answer."""
        pid = run.job.prediction_id
        claimed = run.claimed
        assert claimed is not None
        try:
            # Secret inputs are opened only now, for the child: never stored in clear.
            inputs = self._open_secrets(claimed.run_input)
        except SecretsKeyError as exc:
            return _failed_handoff(slot, exc.detail)
        run.runner = runner
        try:
            done = runner.predict(
                slot,
                pid,
                inputs,
                context={},
                on_event=functools.partial(self._on_event, run),
            )
        except Exception as exc:
            # Nothing may stay held by a prediction the runner never took: its runner slot
            # goes back (a no-op once predict() used it), and it ends failed like any run.
            log.warning("prediction %s could not be handed to its runner: %s", pid, exc)
            return _failed_handoff(slot, handoff_error(exc))
        if run.cancel_reason is not None:
            runner.cancel(pid)
        return done

    def _open_secrets(self, run_input: dict[str, Any] | None) -> dict[str, Any]:
        if not is_sealed(run_input):
            return run_input or {}
        if self._secrets is None:
            self._secrets = SecretBox.from_settings(self.settings)
        return self._secrets.open(run_input)

    async def _predict(self, run: _Run, done: asyncio.Future[dict[str, Any]]) -> None:
        try:
            result = await done
        finally:
            run.pool.slot_done()
        while run.storing is not None:  # an output file is still being stored
            await run.storing.wait()
        await self._finish(run, result)

    def _should_not_start(self, run: _Run, deadline: datetime | None) -> bool:
        if deadline is not None and deadline <= utcnow() and run.cancel_reason is None:
            run.cancel_reason = DEADLINE_REASON
        return run.cancel_reason is not None

    async def _end_unstarted(self, run: _Run) -> None:
        await self._finish(run, {"status": CANCELED, "error": None, "output": None})

    # --- runner events ------------------------------------------------------------------

    def _on_event(self, run: _Run, message: dict[str, Any]) -> None:
        """A runner event, straight from the runner's socket (on the loop).

        Events go on the bus at once; their store writes join the writer's next batch.
        Only a prediction with a webhook publishes after the write (the relay reads the
        row). Events wait in the run's backlog while an output file is being stored.
        """
        if run.storing is not None:
            run.backlog.append(message)
            return
        try:
            self._apply_event(run, message)
        except Exception:
            log.exception("prediction %s: could not handle a runner event", run.job.prediction_id)

    def _apply_event(self, run: _Run, message: dict[str, Any]) -> None:
        pid = run.job.prediction_id
        kind = message.get("type")
        if kind == "started":
            run.started_at = utcnow()
            if run.unwritten is not None:
                return  # no one can listen yet, nothing to write: see persist()
            if run.ordered:
                self._write_started(run)
            else:
                self.bus.publish(pid, "start", {})
                # A quick run goes from starting to its end in one write; a longer one
                # shows ``processing`` (to GET, and to a restart) within a few ms.
                loop = asyncio.get_running_loop()
                run.start_timer = loop.call_later(START_DELAY, self._write_started, run)
        elif kind == "log":
            text = message.get("data") or ""
            if not text:
                return
            run.logs.append(text)
            run.all_logs.append(text)
            if run.unwritten is not None:
                return
            if not run.ordered:
                self.bus.publish(pid, "logs", text)
            if not run.logs_queued:
                # one write for all the text that arrives until its batch starts
                run.logs_queued = True
                sent: list[str] = []
                future = self._writer.submit_lazy(functools.partial(self._logs_write, run, sent))
                future.add_done_callback(functools.partial(self._written, run, "logs", sent))
        elif kind == "output":
            value = message.get("value")
            if _has_file(value):
                run.storing = asyncio.Event()
                self._spawn(self._store_output(run, value))
            else:
                self._add_output(run, value)

    def _write_started(self, run: _Run) -> None:
        run.start_timer = None
        if run.start_written or run.started_at is None:
            return
        run.start_written = True
        pid = run.job.prediction_id
        future = self._writer.submit(writes.mark_started(pid, run.started_at))

        def written(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                return
            if f.exception() is not None:
                log.error("prediction %s: could not record its start: %s", pid, f.exception())
            elif run.ordered and f.result():
                self.bus.publish(pid, "start", {})

        future.add_done_callback(written)

    def _logs_write(self, run: _Run, sent: list[str]) -> writes.Write | None:
        run.logs_queued = False
        text, run.logs = "".join(run.logs), []
        if not text:
            return None
        sent.append(text)
        return writes.append_logs(run.job.prediction_id, text)

    def _written(self, run: _Run, event: str, sent: list[Any], future: asyncio.Future[Any]) -> None:
        pid = run.job.prediction_id
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("prediction %s: could not record %s: %s", pid, event, future.exception())
        if run.ordered:
            for item in sent:
                self.bus.publish(pid, event, item)

    def _add_output(self, run: _Run, value: Any) -> None:
        pid = run.job.prediction_id
        run.outputs.append(value)
        if run.unwritten is not None:
            return
        if not run.ordered:
            self.bus.publish(pid, "output", value)
        if not run.outputs_queued:
            run.outputs_queued = True
            sent: list[Any] = []
            future = self._writer.submit_lazy(functools.partial(self._outputs_write, run, sent))
            future.add_done_callback(functools.partial(self._written, run, "output", sent))

    def _outputs_write(self, run: _Run, sent: list[Any]) -> writes.Write | None:
        run.outputs_queued = False
        new = run.outputs[run.outputs_written :]
        if not new:
            return None
        run.outputs_written = len(run.outputs)
        sent.extend(new)
        return writes.set_output(run.job.prediction_id, list(run.outputs))

    async def _store_output(self, run: _Run, value: Any) -> None:
        pid = run.job.prediction_id
        try:
            try:
                stored = await self._store_files(run, value)
            except Exception:
                log.exception("prediction %s: could not store an output file", pid)
            else:
                self._add_output(run, stored)
            # what arrived meanwhile, in order, until the next file (if any)
            while run.backlog:
                message = run.backlog.popleft()
                kind = message.get("type")
                if kind == "output" and _has_file(message.get("value")):
                    try:
                        stored = await self._store_files(run, message.get("value"))
                    except Exception:
                        log.exception("prediction %s: could not store an output file", pid)
                        continue
                    self._add_output(run, stored)
                    continue
                try:
                    self._apply_event(run, message)
                except Exception:
                    log.exception("prediction %s: could not handle a runner event", pid)
        finally:
            storing, run.storing = run.storing, None
            if storing is not None:
                storing.set()

    # --- the end of a run ---------------------------------------------------------------

    async def _finish(self, run: _Run, result: dict[str, Any]) -> None:
        pid = run.job.prediction_id
        if run.start_timer is not None:
            run.start_timer.cancel()
            run.start_timer = None
        status = str(result.get("status") or FAILED)
        if status not in TERMINAL:
            status = FAILED
        error = result.get("error")
        if status == FAILED and not error:
            error = "prediction failed"
        if status == CANCELED:
            error = None
        if self._stopping and error == WORKER_EXITED:
            error = INTERRUPTED_ERROR  # the server stopped it, the model did not crash
        iterator = self._iterators.get(run.job.version_id)
        if iterator is None:
            version = await self._blocking(self.store.catalog.version, run.job.version_id)
            iterator = _is_iterator(version.openapi_schema if version else None)
        output = result.get("output")
        if output is not None and status == SUCCEEDED:
            output = await self._store_files(run, output)
        if iterator and (run.outputs or output is None):
            output = list(run.outputs)
        if status == CANCELED and run.cancel_reason is None and run.runner is None:
            run.cancel_reason = "canceled"
        claimed = run.claimed
        at = utcnow()
        metrics = dict((claimed.metrics if claimed else None) or {})
        metrics.update(result.get("metrics") or {})
        if claimed is not None and claimed.created_at is not None:
            metrics["total_time"] = max(0.0, (at - claimed.created_at).total_seconds())
        started_at = run.started_at or (claimed.started_at if claimed else None)
        if "predict_time" not in metrics and started_at is not None:
            metrics["predict_time"] = max(0.0, (at - started_at).total_seconds())
        error_text = str(error) if error else None
        cancel_reason = run.cancel_reason if status == CANCELED else None
        self._release_slot(run)
        quiet = run.unwritten is not None
        if quiet:
            self._write_unwritten(
                run,
                {
                    "status": status,
                    "completed_at": at,
                    "started_at": started_at,
                    "error": error_text,
                    "metrics": metrics,
                    "output": output,
                    "logs": "".join(run.all_logs),
                    "cancel_reason": cancel_reason,
                },
            )
            assert run.written is not None
            await asyncio.shield(run.written)
            changed = True
        else:
            if run.written is not None:  # persisted mid-run: its job id comes with it
                await asyncio.shield(run.written)
            changed = await self._writer.submit(
                writes.finish(
                    pid,
                    status=status,
                    at=at,
                    error=error_text,
                    metrics=metrics,
                    output=output,
                    cancel_reason=cancel_reason,
                    started_at=run.started_at if not run.start_written else None,
                    job_id=run.job.id or None,
                )
            )
        run.job_done = True
        if not changed:
            return
        self._remember(
            pid,
            {
                "status": status,
                "output": output,
                "error": error_text,
                "logs": "".join(run.all_logs),
                "metrics": metrics,
                "started_at": started_at,
                "completed_at": at,
                "cancel_reason": cancel_reason,
            },
        )
        # A deferred run ended unseen: nothing to publish, a later reader gets the store's.
        if not quiet:
            if status == SUCCEEDED and not iterator:
                self.bus.publish(pid, "output", output)
            self._publish_end(pid, status, error_text)
        if error == WORKER_EXITED:
            log.warning("prediction %s failed: its runner exited", pid)

    def _publish_terminal(self, row: PredictionRow) -> None:
        self._publish_end(row.id, row.status, row.error)

    def _publish_end(self, prediction_id: str, status: str, error: str | None) -> None:
        if status == FAILED:
            self.bus.publish(prediction_id, "error", {"detail": error or "prediction failed"})
            self.bus.publish(prediction_id, "done", {"reason": "error"})
        elif status == CANCELED:
            self.bus.publish(prediction_id, "done", {"reason": "canceled"})
        else:
            self.bus.publish(prediction_id, "done", {})

    # --- output files -------------------------------------------------------------------

    async def _store_files(self, run: _Run, value: Any) -> Any:
        """Hand output files (``{"__vendo_file__": path}`` markers) to file storage; the
        store keeps the references storage returns."""
        if not _has_file(value):
            return value
        owner_id = run.claimed.owner_id if run.claimed is not None else 0
        if self.storage is None:
            # no storage (tests of the pool alone): keep the local path as a file URL
            return _replace_files(value, lambda path: Path(path).as_uri())
        encode = self.storage.encode_outputs
        return await self._blocking(encode, run.job.prediction_id, owner_id, value)


def _has_file(value: Any) -> bool:
    if isinstance(value, dict):
        return FILE_KEY in value or any(_has_file(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_file(v) for v in value)
    return False


def _replace_files(value: Any, fn: Callable[[str], Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {FILE_KEY}:
            return fn(str(value[FILE_KEY]))
        return {k: _replace_files(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_files(v, fn) for v in value]
    return value

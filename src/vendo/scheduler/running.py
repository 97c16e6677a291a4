"""A run's life, top to bottom: :meth:`RunLifecycle.perform`.

    perform(run)
      _start      warm runner + free slot, else cold start / wait (cancel wins)
      _answer     the runner's ``done`` (events meanwhile: vendo.scheduler.recording)
      end         the terminal state: decided, slot freed, written, published
      _settle     job completed (or given back), the run forgotten

Every run ends in exactly one terminal state, written in the same transaction that
deletes its job; ``done`` is published after that commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

from vendo.errors import RunnerError, SecretsKeyError, VendoError
from vendo.files.storage import has_shared_inputs
from vendo.queue import INTERRUPTED_ERROR, claims
from vendo.scheduler import tracing
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.events import decide_end
from vendo.scheduler.pool import NoCapacity
from vendo.scheduler.process import WORKER_EXITED, RunnerProcess, Slot, handoff_error
from vendo.scheduler.recording import Recorder
from vendo.scheduler.run import Run, RunPhase
from vendo.scheduler.training import trained_version
from vendo.status import TERMINAL, PredictionStatus, final_metrics
from vendo.store import utcnow
from vendo.store.batch import Write
from vendo.store.prediction_writes import append_logs

__all__ = ["DEADLINE_REASON", "RunLifecycle"]

log = logging.getLogger(__name__)

DEADLINE_REASON = "deadline"
Answer = asyncio.Future[dict[str, Any]]


def _result(status: str, error: str | None = None) -> dict[str, Any]:
    return {"status": status, "error": error, "output": None}


def _failed_handoff(slot: Slot, error: str) -> Answer:
    """The answer of a prediction its runner never took: its slot goes back (a no-op once
    predict() used it) and it ends failed like any run."""
    slot.release()
    failed: Answer = asyncio.get_running_loop().create_future()
    failed.set_result(_result(PredictionStatus.FAILED, error))
    return failed


class RunLifecycle:
    """Runs claimed jobs on the pools' runners and ends each in one terminal state."""

    def __init__(self, ctx: SchedulerContext, recorder: Recorder) -> None:
        self.ctx = ctx
        self.recorder = recorder

    async def perform(self, run: Run, sent: Answer | None = None) -> None:
        """Run a claimed job to its end; ``sent``: its prediction was already handed to
        a runner (:meth:`send`), and this is what it will answer."""
        if not tracing.enabled():
            await self._perform(run, sent)
            return
        pid = run.prediction_id
        with tracing.run_span(pid, run.pool.key, run.job.version_id) as span:
            await self._perform(run, sent)
            outcome = self.ctx.outcomes.get(pid)
            if outcome is not None:
                span.set_attribute("vendo.status", str(outcome["status"]))
        tracing.forget(pid)

    async def _perform(self, run: Run, sent: Answer | None) -> None:
        keep_job = False
        try:
            started = sent if sent is not None else await self._start(run)
            if started is None:
                return  # already ended elsewhere, or given back to the queue
            result = started if isinstance(started, dict) else await self._answer(run, started)
            await self.end(run, result)
        except Exception as exc:
            log.exception("prediction %s: scheduler error", run.prediction_id)
            # Unrecorded, the job stays claimed: the next start's recovery ends the
            # prediction (recovery looks for claimed jobs, not for predictions without one).
            keep_job = not await self._fail(run, f"internal error: {exc}")
        finally:
            await self._settle(run, keep_job=keep_job)

    async def _start(self, run: Run) -> Answer | dict[str, Any] | None:
        """Hand the run to a runner: its answer to come, or at once the result of a run
        that ends without running (a dict), or None when there is nothing to run."""
        claimed = run.claimed
        if claimed.status is None or claimed.status in TERMINAL:
            return None
        if claimed.status == PredictionStatus.PROCESSING:
            # Started under an earlier claim whose server stopped: never run twice (the
            # restart policy), whether or not that server's recovery got to it.
            return _result(PredictionStatus.FAILED, INTERRUPTED_ERROR)
        if self.past_deadline(run):
            return _result(PredictionStatus.CANCELED)
        if has_shared_inputs(claimed.run_input):
            fetch_error = await self._fetch_inputs(run)
            if fetch_error is not None:
                return _result(PredictionStatus.FAILED, fetch_error)
        # A warm runner with a free slot (the common case) is taken without a wait, and
        # so without the tasks that waiting alongside a cancel takes.
        runner = run.pool.ready()
        slot = runner.acquire_slot() if runner is not None else None
        if runner is not None and slot is not None:
            return self.send(run, runner, slot)
        runner = None
        try:
            if run.instance is None:
                run.instance = run.pool.bind(run.job.version_id)
            runner = await run.unless_canceled(run.pool.runner(run.instance))
            if runner is None or self.past_deadline(run):
                return _result(PredictionStatus.CANCELED)
            slot = await run.unless_canceled(run.pool.acquire(runner))
        except RunnerError as exc:
            if self.ctx.stopping or isinstance(exc, NoCapacity):
                # never failed for want of room: back to the queue, claimed again later
                run.advance(RunPhase.REQUEUED)
                return None
            if runner is not None:
                raise  # a runner that took no work: a scheduler error
            return await self._setup_failed(run, exc)
        if slot is None or self.past_deadline(run):
            if slot is not None:
                slot.release()
            return _result(PredictionStatus.CANCELED)
        return self.send(run, runner, slot)

    async def _fetch_inputs(self, run: Run) -> str | None:
        """Fetch the run's input files from the bucket onto this host (scaled mode: the
        prediction was accepted by another); the error, if that failed."""
        ctx = self.ctx
        folder = Path(ctx.settings.data_dir) / "inputs" / run.prediction_id
        run.input_folder = folder
        try:
            local = await ctx.blocking(ctx.storage.localize_inputs, run.claimed.run_input, folder)
        except (OSError, VendoError) as exc:
            return f"could not fetch the input files: {exc}"
        run.claimed = run.claimed._replace(run_input=local)
        return None

    async def _setup_failed(self, run: Run, exc: RunnerError) -> dict[str, Any]:
        logs = run.pool.last_setup_logs
        if logs and not self.ctx.abandoned:
            await self.ctx.writer.add(append_logs(run.prediction_id, logs, self.ctx.fence(run)))
            run.all_logs.append(logs)
        return _result(PredictionStatus.FAILED, exc.detail)

    def send(self, run: Run, runner: RunnerProcess, slot: Slot) -> Answer:
        """Hand the run's prediction to ``runner`` in ``slot``; the future is its answer."""
        pid = run.prediction_id
        try:
            # Secret inputs are opened only now, for the child: never stored in clear.
            inputs = self.ctx.open_secrets(run.claimed.run_input)
        except SecretsKeyError as exc:
            return _failed_handoff(slot, exc.detail)
        run.runner = runner
        if run.instance is None:
            run.instance = run.pool.instance_of(runner)
            if run.instance is not None:
                run.instance.bind()
        # before predict(), which reports ``started`` as it hands the prediction over
        run.advance(RunPhase.SENT)
        try:
            run.events = self.recorder.events(run)
            done = runner.predict(slot, pid, inputs, context={}, on_event=run.events.push)
        except Exception as exc:
            # Nothing may stay held by a prediction the runner never took: its runner slot
            # goes back (a no-op once predict() used it), and it ends failed like any run.
            log.warning("prediction %s could not be handed to its runner: %s", pid, exc)
            return _failed_handoff(slot, handoff_error(exc))
        if tracing.enabled():
            tracing.queued(pid, run.pool.key, run.claimed.created_at)
        if run.cancel_reason is not None:
            runner.cancel(pid)
        return done

    async def _answer(self, run: Run, done: Answer) -> dict[str, Any]:
        try:
            result = await done
        finally:
            run.pool.slot_done()
        if run.events is not None:  # an output file may still be being stored
            await run.events.settled()
        return result

    def past_deadline(self, run: Run) -> bool:
        """Whether the run must not start: canceled, or its deadline passed."""
        deadline = run.claimed.deadline
        if deadline is not None and deadline <= utcnow() and run.cancel_reason is None:
            run.cancel_reason = DEADLINE_REASON
        return run.cancel_reason is not None

    # --- the end ----------------------------------------------------------------------

    async def end(self, run: Run, result: dict[str, Any]) -> None:
        """Decide the run's terminal state, free its slot, write it, tell the bus."""
        if run.start_timer is not None:
            run.start_timer.cancel()
            run.start_timer = None
        end, iterator = await self._terminal(run, result)
        self.ctx.release_slot(run)
        run.advance(RunPhase.ENDED)
        if self.ctx.abandoned:
            return  # found lost: another process decided this run's end
        quiet = run.unwritten is not None
        if quiet:
            # A deferred run ended unseen: one insert, nothing to publish.
            self.recorder.insert_unwritten(run, end)
            assert run.written is not None
            await asyncio.shield(run.written)
            changed = True
        else:
            changed = await self.recorder.record_end(run, end)
        run.advance(RunPhase.RECORDED)
        if end.pop("then", None) is not None and changed:
            self.ctx.store.changed()  # a training made a version: cached reads must see it
        if not changed:
            return
        pid = run.prediction_id
        self.ctx.outcomes.remember(pid, end)
        predict_time = (end["metrics"] or {}).get("predict_time")
        self.ctx.metrics.ended(run.pool.key, end["status"], predict_time)
        if not quiet:
            status = end["status"]
            if status == PredictionStatus.SUCCEEDED and not iterator:
                self.ctx.bus.publish(pid, "output", end["output"])
            self.recorder.publish_end(pid, status, end["error"])
        if result.get("error") == WORKER_EXITED:
            log.warning("prediction %s failed: its runner exited", pid)

    async def _terminal(self, run: Run, result: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The terminal columns of a run that answered ``result`` (its outcome), and
        whether its version's output is an iterator."""
        status, error = decide_end(result, canceled=run.cancel_reason is not None)
        if self.ctx.stopping and error == WORKER_EXITED:
            error = INTERRUPTED_ERROR  # the server stopped it, the model did not crash
        # a training's output is its weights, whatever the version's predict() returns
        iterator = False if run.job.kind == "train" else self.ctx.iterators.get(run.job.version_id)
        if iterator is None:  # known for every version with a pool: no await here
            iterator = await self.ctx.is_iterator(run.job.version_id)
        output, then = result.get("output"), None
        if output is not None and status == PredictionStatus.SUCCEEDED:
            try:
                output, then = await self._stored_output(run, output)
            except RunnerError as exc:
                status, error, output = PredictionStatus.FAILED, exc.detail, None
        if iterator and (run.outputs or output is None):
            output = list(run.outputs)
        if status == PredictionStatus.CANCELED and run.cancel_reason is None and run.runner is None:
            run.cancel_reason = "canceled"
        claimed, at = run.claimed, utcnow()
        started_at = run.started_at or claimed.started_at
        end = {
            "status": status,
            "output": output,
            "error": error,
            "logs": "".join(run.all_logs),
            "metrics": final_metrics(
                claimed.metrics,
                result.get("metrics"),
                created_at=claimed.created_at,
                started_at=started_at,
                at=at,
            ),
            "started_at": started_at,
            "completed_at": at,
            "cancel_reason": run.cancel_reason if status == PredictionStatus.CANCELED else None,
            "then": then,
        }
        return end, iterator

    async def _stored_output(self, run: Run, output: Any) -> tuple[Any, Write | None]:
        """A succeeded run's output as stored, its files in file storage; a training's
        is its new version (with the write that inserts it)."""
        if run.job.kind != "train":
            return await self.recorder.store_files(run, output), None
        trained = await trained_version(self.ctx, run, output)
        return trained.output, trained.write

    async def _fail(self, run: Run, message: str) -> bool:
        """The scheduler itself failed the run: record it failed, as best it can (its
        job is completed by :meth:`_settle`). Whether that was recorded."""
        try:
            if run.unwritten is not None:
                self.recorder.insert_unwritten(run)
            if run.written is not None:
                await asyncio.shield(run.written)
            claimed = run.claimed._replace(started_at=run.started_at or run.claimed.started_at)
            # with its job, if any: fenced, as every end of a claimed run
            await self.recorder.record_failure(claimed, message, job_id=run.job.id or None)
        except Exception:
            log.exception("prediction %s: could not record the failure", run.prediction_id)
            return False
        return True

    async def _settle(self, run: Run, *, keep_job: bool = False) -> None:
        """After the end: forget the run, free its slot, complete (or requeue) its job."""
        pid = run.prediction_id
        if run.start_timer is not None:
            run.start_timer.cancel()
        self.ctx.runs.pop(pid, None)
        self.ctx.release_slot(run)
        if run.instance is not None:
            instance, run.instance = run.instance, None
            run.pool.unbind(instance)
        if run.phase < RunPhase.ENDED:
            run.advance(RunPhase.ENDED)
        with contextlib.suppress(Exception):
            if run.unwritten is not None:
                # never started and the server is stopping: queued for the next start
                self.recorder.insert_unwritten(run)
            if run.written is not None:
                await asyncio.shield(run.written)
            await self._release_job(run, keep_job=keep_job)
        self.ctx.deferred.pop(pid, None)
        if run.input_folder is not None:
            with contextlib.suppress(Exception):
                await self.ctx.blocking(shutil.rmtree, run.input_folder, True)
        if run.ended is not None and not run.ended.done():
            run.ended.set_result(None)

    async def _release_job(self, run: Run, *, keep_job: bool) -> None:
        """Give the run's job back to the queue, or complete it: only while it is ours
        (fenced); nothing at all once this process was found lost."""
        job_id, worker = run.job.id, self.ctx.queue.worker_id
        if not job_id or self.ctx.abandoned:
            return
        if run.phase is RunPhase.REQUEUED:
            await self.ctx.writer.add(claims.requeue(job_id, worker))
        elif run.phase is not RunPhase.RECORDED and not keep_job:
            await self.ctx.writer.add(claims.complete(job_id, worker))

    # --- cancel -----------------------------------------------------------------------

    async def cancel(self, prediction_id: str, reason: str = "canceled") -> bool:
        """Cancel a queued or running prediction. False when it is neither (finished,
        unknown, or claimed by another scheduler)."""
        run = self.ctx.runs.get(prediction_id)
        if run is not None:
            run.cancel_reason = run.cancel_reason or reason
            if run.canceled is None:
                run.canceled = asyncio.Event()
            run.canceled.set()
            if run.runner is not None:
                run.runner.cancel(prediction_id)
            return True
        row = await self.ctx.blocking(self.ctx.queue.cancel_queued, prediction_id, reason)
        if row is None:
            return False
        self.recorder.publish_row_end(row)
        return True

"""The end of a training: its weights become a version of its destination model.

A training that succeeded returned a weights file (a ``Path``, or the ``weights`` of a
``TrainingOutput``). It is moved into file storage as a file of its own (no prediction
owns it, so the training's retention never removes it), and a version of the
destination is made of the trainer version's package and built environment plus those
weights: no rebuild. The version is inserted by the same transaction that writes the
training's terminal state (:func:`version_write`, run by
:func:`vendo.queue.claims.record_end`), so a crash never leaves a version without its
succeeded training, nor a succeeded training without its version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from vendo.errors import RunnerError
from vendo.files.storage import FILE_ID_KEY, FILE_MARKER
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.run import Run
from vendo.store import utcnow
from vendo.store.batch import Write
from vendo.store.catalog import version_id_for
from vendo.store.tables import VersionRow

__all__ = ["TrainedVersion", "trained_version", "weights_path"]

_versions = cast(sa.Table, VersionRow.__table__)


def weights_path(output: Any) -> Path | None:
    """The weights file a training returned: the file itself, or ``weights`` of an
    object (``TrainingOutput``)."""
    if isinstance(output, dict) and isinstance(output.get("weights"), dict):
        output = output["weights"]
    if isinstance(output, dict) and isinstance(output.get(FILE_MARKER), str):
        return Path(output[FILE_MARKER])
    return None


@dataclass(frozen=True)
class TrainedVersion:
    """What a succeeded training ends with: its ``output`` as stored (the weights a
    file reference) and the write that inserts the version."""

    output: dict[str, Any]
    write: Write


async def trained_version(ctx: SchedulerContext, run: Run, output: Any) -> TrainedVersion:
    """Store the weights of a succeeded training and prepare its version. Raises
    :class:`RunnerError` (the training then fails) when there are no weights or the
    destination is gone."""
    source = weights_path(output)
    if source is None or not source.is_file():
        raise RunnerError(
            "the training returned no weights file: train() must return a Path or an "
            "object with a `weights` Path (TrainingOutput)"
        )
    training = await ctx.blocking(ctx.store.predictions.get, run.prediction_id)
    trainer = await ctx.blocking(ctx.store.catalog.version, run.job.version_id)
    destination = (training.destination if training is not None else None) or ""
    owner, _, name = destination.partition("/")
    model = await ctx.blocking(ctx.store.catalog.model, owner, name) if owner else None
    if trainer is None or model is None:
        raise RunnerError(f"the destination model {owner}/{name} no longer exists")
    if ctx.storage is None:
        raise RunnerError("this scheduler has no file storage for the weights")
    stored = await ctx.blocking(ctx.storage.save_weights, run.claimed.owner_id, source)
    # The same trainer and the same weights make the same version (as a repeated push
    # of one package does).
    digest = hashlib.sha256(f"{trainer.digest or trainer.id}\n{stored.sha256}".encode())
    version_id = version_id_for(owner, name, digest.hexdigest())
    values = {
        "id": version_id,
        "model_id": model.id,
        "digest": digest.hexdigest(),
        "created_at": utcnow(),
        "cog_version": trainer.cog_version,
        "openapi_schema": trainer.openapi_schema,
        "package_path": trainer.package_path,
        "environment": trainer.environment,
        "config": trainer.config,
        "build_log": f"trained by training {run.prediction_id} from version {trainer.id}\n",
        # scaled mode: the bucket URL (runners elsewhere do not share this disk)
        "weights": ctx.storage.location(stored),
    }
    result = {"version": f"{owner}/{name}:{version_id}", "weights": {FILE_ID_KEY: stored.id}}
    return TrainedVersion(result, version_write(values))


def version_write(values: dict[str, Any]) -> Write:
    """Insert the version ``values`` unless the model has it already (same digest)."""

    def write(conn: sa.Connection) -> None:
        exists = conn.execute(
            sa.select(_versions.c.id).where(
                _versions.c.model_id == values["model_id"], _versions.c.digest == values["digest"]
            )
        ).first()
        if exists is None:
            conn.execute(_versions.insert().values(**values))

    return write

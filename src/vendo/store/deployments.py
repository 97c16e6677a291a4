"""Deployments and their releases.

A deployment is a name under an owner; what it runs (model, version, hardware, min and
max instances) is its newest release. Every change inserts the next release (kept as
history, Replicate's ``current_release.number``). A change of version hands the
deployment's queued (unclaimed) jobs to the new version in the same transaction, each
input checked against the new version first (``refit``): one it refuses ends
``failed`` there and then, never run with an input its version does not take.

Every change clears the store's read cache (:meth:`Database.changed`): the prediction
route reads a deployment through it (``store.cached.deployment``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vendo.errors import Conflict
from vendo.status import JobState, PredictionStatus, pool_key
from vendo.store.database import Database
from vendo.store.ids import utcnow
from vendo.store.paging import Page, offset_page
from vendo.store.predictions import Predictions
from vendo.store.tables import (
    DeploymentRow,
    JobRow,
    ModelRow,
    PredictionRow,
    ReleaseRow,
    UserRow,
)

__all__ = ["RELEASE_FIELDS", "Deployed", "Deployments", "Refit", "Released"]

# What a release sets, and so what a change (PATCH) may change.
RELEASE_FIELDS = ("model_id", "version_id", "hardware", "min_instances", "max_instances")

#: Whether a queued prediction's input fits the version it is moving to: None when it
#: does, else what does not fit (``"count: Input should be ..."``).
Refit = Callable[[PredictionRow], "str | None"]


@dataclass(frozen=True)
class Deployed:
    """A deployment with its current release."""

    deployment: DeploymentRow
    release: ReleaseRow

    @property
    def full_name(self) -> str:
        return f"{self.deployment.owner.username}/{self.deployment.name}"

    @property
    def pool(self) -> str:
        """The key of its pool and queue."""
        return pool_key(self.release.version_id, self.full_name)


@dataclass(frozen=True)
class Released:
    """What a change did: the deployment as it now stands, and the queued predictions
    its new version refused (ended ``failed`` in the release's transaction: their end
    is the caller's to publish)."""

    found: Deployed
    refused: list[PredictionRow] = field(default_factory=list)


def _current(session: Session, deployment: DeploymentRow) -> ReleaseRow:
    release = session.scalar(
        sa.select(ReleaseRow)
        .where(ReleaseRow.deployment_id == deployment.id)
        .order_by(ReleaseRow.number.desc())
        .limit(1)
    )
    assert release is not None  # a deployment is created with its first release
    return release


class Deployments:
    """Deployments and releases. Blocking: call off the event loop."""

    def __init__(self, db: Database, predictions: Predictions) -> None:
        self._db = db
        self._predictions = predictions  # ends the predictions a new version refuses

    def create(self, owner_id: int, name: str, *, created_by_id: int, **release: Any) -> Deployed:
        """A new deployment with release 1 (``release``: every one of
        :data:`RELEASE_FIELDS`). :class:`Conflict` if the owner has one of that name."""
        try:
            with self._db.write() as s:
                deployment = DeploymentRow(owner_id=owner_id, name=name, created_at=utcnow())
                s.add(deployment)
                s.flush()
                s.add(self._release_row(deployment.id, 1, created_by_id, release))
                deployment_id = deployment.id
        except IntegrityError as exc:
            raise Conflict(f"a deployment named {name!r} already exists for this owner") from exc
        self._db.changed()  # a cached "no such deployment" must not outlive it
        found = self.by_id(deployment_id)
        assert found is not None
        return found

    @staticmethod
    def _release_row(
        deployment_id: int, number: int, created_by_id: int, fields: dict[str, Any]
    ) -> ReleaseRow:
        unknown = set(fields) - set(RELEASE_FIELDS)
        if unknown:
            raise ValueError(f"unknown release fields: {sorted(unknown)}")
        return ReleaseRow(
            deployment_id=deployment_id,
            number=number,
            created_by_id=created_by_id,
            created_at=utcnow(),
            **fields,
        )

    def by_id(self, deployment_id: int) -> Deployed | None:
        with self._db.read() as s:
            deployment = s.get(DeploymentRow, deployment_id)
            if deployment is None:
                return None
            return Deployed(deployment, _current(s, deployment))

    def get(self, owner: str, name: str) -> Deployed | None:
        """The deployment ``owner/name`` with its current release."""
        with self._db.read() as s:
            deployment = s.scalar(
                sa.select(DeploymentRow)
                .join(DeploymentRow.owner)
                .where(UserRow.username == owner, DeploymentRow.name == name)
            )
            if deployment is None:
                return None
            return Deployed(deployment, _current(s, deployment))

    def page(
        self, owner_id: int | None, cursor: str | None = None, limit: int = 100
    ) -> Page[Deployed]:
        """An owner's deployments (``owner_id`` None: everyone's), oldest first."""
        stmt = sa.select(DeploymentRow).order_by(DeploymentRow.id)
        if owner_id is not None:
            stmt = stmt.where(DeploymentRow.owner_id == owner_id)
        with self._db.read() as s:
            found = offset_page(s, stmt, cursor, limit)
            items = [Deployed(d, _current(s, d)) for d in found]
        return Page(items, found.next_cursor, found.previous_cursor)

    def every(self) -> list[Deployed]:
        """Every deployment (the scheduler starts their minimum instances)."""
        with self._db.read() as s:
            return [Deployed(d, _current(s, d)) for d in s.scalars(sa.select(DeploymentRow))]

    def releases(self, deployment_id: int) -> list[ReleaseRow]:
        """Every release of a deployment, oldest first (its history)."""
        with self._db.read() as s:
            return list(
                s.scalars(
                    sa.select(ReleaseRow)
                    .where(ReleaseRow.deployment_id == deployment_id)
                    .order_by(ReleaseRow.number)
                )
            )

    def release(
        self,
        deployment_id: int,
        created_by_id: int,
        *,
        refit: Refit | None = None,
        **changes: Any,
    ) -> Released:
        """Insert the next release: the current one with ``changes``. When the version
        changes, the deployment's queued jobs (and their predictions) move to the new
        version in the same transaction, those whose input ``refit`` refuses ending
        ``failed`` instead; claimed ones finish where they are."""
        for attempt in range(3):
            try:
                released = self._release_once(deployment_id, created_by_id, changes, refit)
            except IntegrityError:
                # another process inserted the same number first (PostgreSQL): next one
                if attempt == 2:
                    raise
                continue
            self._db.changed()
            return released
        raise AssertionError("unreachable")

    def _release_once(
        self,
        deployment_id: int,
        created_by_id: int,
        changes: dict[str, Any],
        refit: Refit | None,
    ) -> Released:
        refused: list[PredictionRow] = []
        with self._db.write() as s:
            deployment = s.get(DeploymentRow, deployment_id)
            if deployment is None:
                raise Conflict(f"deployment {deployment_id} no longer exists")
            current = _current(s, deployment)
            fields = {f: getattr(current, f) for f in RELEASE_FIELDS} | changes
            number = current.number + 1
            s.add(self._release_row(deployment_id, number, created_by_id, fields))
            if fields["version_id"] != current.version_id:
                full_name = f"{deployment.owner.username}/{deployment.name}"
                if refit is not None:
                    reason = (
                        f"the input no longer fits version {fields['version_id']}: deployment "
                        f"{full_name} changed to it (release {number}) from version "
                        f"{current.version_id} while this prediction was queued"
                    )
                    refused = _refuse_unfit(
                        s, pool_key("", full_name), refit, reason, self._predictions.finish
                    )
                model = s.get(ModelRow, fields["model_id"])
                assert model is not None
                moved = {
                    "version_id": fields["version_id"],
                    "model_id": model.id,
                    "model": f"{model.owner.username}/{model.name}",
                }
                _move_queued(s, pool_key("", full_name), moved)
        found = self.by_id(deployment_id)
        assert found is not None
        return Released(found, refused)

    def busy(self, key: str) -> bool:
        """Whether the pool ``key`` has jobs, queued or running."""
        with self._db.read() as s:
            return s.scalar(sa.select(JobRow.id).where(JobRow.pool == key).limit(1)) is not None

    def delete(self, deployment_id: int, key: str) -> None:
        """Delete a deployment and its releases; :class:`Conflict` while its pool
        ``key`` has jobs (checked in the same transaction)."""
        with self._db.write() as s:
            if s.scalar(sa.select(JobRow.id).where(JobRow.pool == key).limit(1)) is not None:
                raise Conflict("the deployment still has predictions queued or running")
            s.execute(sa.delete(ReleaseRow).where(ReleaseRow.deployment_id == deployment_id))
            s.execute(sa.delete(DeploymentRow).where(DeploymentRow.id == deployment_id))
        self._db.changed()


def _refuse_unfit(
    session: Session, key: str, refit: Refit, reason: str, finish: Callable[..., Any]
) -> list[PredictionRow]:
    """End ``failed`` each queued prediction of pool ``key`` whose input ``refit``
    refuses, its job deleted with it (so it is not moved); the ended rows."""
    jobs = cast(sa.Table, JobRow.__table__)
    queued = sa.select(jobs.c.prediction_id).where(
        jobs.c.pool == key, jobs.c.state == JobState.QUEUED
    )
    rows = session.scalars(
        sa.select(PredictionRow).where(PredictionRow.id.in_(queued.scalar_subquery()))
    ).all()
    refused: list[tuple[str, str]] = []
    for row in rows:
        unfit = refit(row)
        if unfit is not None:
            refused.append((row.id, f"{reason}: {unfit}"))
    if not refused:
        return []
    ended: list[PredictionRow] = []
    for prediction_id, error in refused:
        gone = session.execute(
            sa.delete(jobs).where(
                jobs.c.prediction_id == prediction_id, jobs.c.state == JobState.QUEUED
            )
        )
        if not getattr(gone, "rowcount", 0):
            continue  # claimed meanwhile (another process): it runs where it was claimed
        row = finish(prediction_id, PredictionStatus.FAILED, error=error, session=session)
        if row is not None:
            ended.append(row)
    return ended


def _move_queued(session: Session, key: str, moved: dict[str, Any]) -> None:
    jobs = cast(sa.Table, JobRow.__table__)
    queued = sa.select(jobs.c.prediction_id).where(
        jobs.c.pool == key, jobs.c.state == JobState.QUEUED
    )
    session.execute(
        sa.update(PredictionRow)
        .where(PredictionRow.id.in_(queued.scalar_subquery()))
        .values(**moved)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(jobs)
        .where(jobs.c.pool == key, jobs.c.state == JobState.QUEUED)
        .values(version_id=moved["version_id"])
    )

"""Deployments and their releases.

A deployment is a name under an owner; what it runs (model, version, hardware, min and
max instances) is its newest release. Every change inserts the next release (kept as
history, Replicate's ``current_release.number``). A change of version hands the
deployment's queued (unclaimed) jobs to the new version in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vendo.errors import Conflict
from vendo.status import JobState, pool_key
from vendo.store.database import Database
from vendo.store.ids import utcnow
from vendo.store.paging import Page, offset_page
from vendo.store.tables import (
    DeploymentRow,
    JobRow,
    ModelRow,
    PredictionRow,
    ReleaseRow,
    UserRow,
)

__all__ = ["RELEASE_FIELDS", "Deployed", "Deployments"]

# What a release sets, and so what a change (PATCH) may change.
RELEASE_FIELDS = ("model_id", "version_id", "hardware", "min_instances", "max_instances")


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

    def __init__(self, db: Database) -> None:
        self._db = db

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

    def release(self, deployment_id: int, created_by_id: int, **changes: Any) -> Deployed:
        """Insert the next release: the current one with ``changes``. When the version
        changes, the deployment's queued jobs (and their predictions) move to the new
        version in the same transaction; claimed ones finish where they are."""
        for attempt in range(3):
            try:
                return self._release_once(deployment_id, created_by_id, changes)
            except IntegrityError:
                # another process inserted the same number first (PostgreSQL): next one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _release_once(
        self, deployment_id: int, created_by_id: int, changes: dict[str, Any]
    ) -> Deployed:
        with self._db.write() as s:
            deployment = s.get(DeploymentRow, deployment_id)
            if deployment is None:
                raise Conflict(f"deployment {deployment_id} no longer exists")
            current = _current(s, deployment)
            fields = {f: getattr(current, f) for f in RELEASE_FIELDS} | changes
            s.add(self._release_row(deployment_id, current.number + 1, created_by_id, fields))
            if fields["version_id"] != current.version_id:
                model = s.get(ModelRow, fields["model_id"])
                assert model is not None
                key = pool_key("", f"{deployment.owner.username}/{deployment.name}")
                moved = {
                    "version_id": fields["version_id"],
                    "model_id": model.id,
                    "model": f"{model.owner.username}/{model.name}",
                }
                _move_queued(s, key, moved)
        found = self.by_id(deployment_id)
        assert found is not None
        return found

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

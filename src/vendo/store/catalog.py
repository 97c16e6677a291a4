"""The catalog: models, their versions, and the builds (accepted pushes) that make
versions."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from vendo.errors import Conflict
from vendo.store.database import Database
from vendo.store.ids import new_id, utcnow
from vendo.store.paging import Page, offset_page
from vendo.store.tables import BuildRow, ModelRow, UserRow, VersionRow

__all__ = ["BUILDS_KEPT", "MODEL_FIELDS", "Catalog", "version_id_for"]

# Builds kept per model: the newest is the one that matters; a few more for the history.
BUILDS_KEPT = 20

# Fields of a model that PATCH and create may set.
MODEL_FIELDS = (
    "description",
    "readme",
    "github_url",
    "paper_url",
    "license_url",
    "weights_url",
    "cover_image_url",
    "visibility",
    "hardware",
)


def version_id_for(owner: str, name: str, digest: str) -> str:
    """The id of the version of ``owner/name`` made of the package with content
    ``digest``: 64 lowercase hex, unique to the model, the same for every push of it."""
    seed = f"vendo-version-v1\n{owner}/{name}\n{digest}".encode()
    return hashlib.sha256(seed).hexdigest()


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(MODEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown model fields: {sorted(unknown)}")


class Catalog:
    """Models, versions and builds. Writes to models and versions clear the store's
    read cache; builds are not cached."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- models ------------------------------------------------------------------------
    def create_model(self, owner_id: int, name: str, **fields: Any) -> ModelRow:
        """A new model; ``fields`` are among :data:`MODEL_FIELDS`. :class:`Conflict` if
        the owner already has a model of that name."""
        _check_fields(fields)
        try:
            with self._db.write() as s:
                model = ModelRow(owner_id=owner_id, name=name, created_at=utcnow(), **fields)
                s.add(model)
                s.flush()
                model_id = model.id
        except IntegrityError as exc:
            raise Conflict(f"a model named {name!r} already exists for this owner") from exc
        return self._changed_model(model_id)

    def model_by_id(self, model_id: int) -> ModelRow | None:
        with self._db.read() as s:
            return s.get(ModelRow, model_id)

    def model(self, owner: str, name: str) -> ModelRow | None:
        """The model ``owner/name``."""
        with self._db.read() as s:
            return s.scalar(
                sa.select(ModelRow)
                .join(ModelRow.owner)
                .where(UserRow.username == owner, ModelRow.name == name)
            )

    def list_models(
        self,
        viewer_id: int | Collection[int] | None,
        *,
        sort_by: str = "model_created_at",
        direction: str = "desc",
        cursor: str | None = None,
        query: str | None = None,
        limit: int = 100,
    ) -> Page[ModelRow]:
        """Public models plus those owned by the viewer (an owner id, or several: a
        user and their organizations; None: all models, for the admin), optionally
        matching ``query`` in owner, name, description or readme."""
        latest = (
            sa.select(sa.func.max(VersionRow.created_at))
            .where(VersionRow.model_id == ModelRow.id)
            .scalar_subquery()
        )
        key: Any = latest if sort_by == "latest_version_created_at" else ModelRow.created_at
        order = [key.asc(), ModelRow.id.asc()]
        if direction != "asc":
            order = [key.desc().nulls_last(), ModelRow.id.desc()]
        stmt = sa.select(ModelRow).join(ModelRow.owner).order_by(*order)
        if viewer_id is not None:
            owners = [viewer_id] if isinstance(viewer_id, int) else list(viewer_id)
            stmt = stmt.where(
                sa.or_(ModelRow.visibility == "public", ModelRow.owner_id.in_(owners))
            )
        if query:
            like = f"%{query.lower()}%"
            stmt = stmt.where(
                sa.or_(
                    sa.func.lower(UserRow.username + "/" + ModelRow.name).like(like),
                    sa.func.lower(sa.func.coalesce(ModelRow.description, "")).like(like),
                    sa.func.lower(sa.func.coalesce(ModelRow.readme, "")).like(like),
                )
            )
        with self._db.read() as s:
            return offset_page(s, stmt, cursor, limit)

    def update_model(self, model_id: int, **fields: Any) -> ModelRow:
        _check_fields(fields)
        with self._db.write() as s:
            model = s.get_one(ModelRow, model_id)
            for key, value in fields.items():
                setattr(model, key, value)
        return self._changed_model(model_id)

    def delete_model(self, model_id: int) -> None:
        """Delete a model. Replicate's rule: only private models without versions
        (:class:`Conflict` otherwise)."""
        with self._db.write() as s:
            model = s.get_one(ModelRow, model_id)
            if model.visibility != "private":
                raise Conflict("only private models can be deleted; make it private first")
            count = s.scalar(
                sa.select(sa.func.count())
                .select_from(VersionRow)
                .where(VersionRow.model_id == model_id)
            )
            if count:
                raise Conflict(
                    "the model has versions; delete them first (DELETE .../versions/{id})"
                )
            s.delete(model)
        self._db.changed()

    def _changed_model(self, model_id: int) -> ModelRow:
        """After a write to the model: clear the cache, read the model back."""
        self._db.changed()
        found = self.model_by_id(model_id)
        assert found is not None
        return found

    # --- versions ----------------------------------------------------------------------
    def create_version(
        self,
        model_id: int,
        version_id: str,
        *,
        openapi_schema: dict[str, Any],
        cog_version: str = "",
        package_path: str = "",
        environment: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        build_log: str = "",
        created_at: datetime | None = None,
        digest: str | None = None,
    ) -> VersionRow:
        """Record a built version. :class:`Conflict` if the id exists already, or the
        model has a version of that package ``digest``."""
        try:
            with self._db.write() as s:
                s.add(
                    VersionRow(
                        id=version_id,
                        model_id=model_id,
                        digest=digest,
                        created_at=created_at or utcnow(),
                        cog_version=cog_version,
                        openapi_schema=openapi_schema,
                        package_path=package_path,
                        environment=environment or {},
                        config=config or {},
                        build_log=build_log,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"version {version_id} already exists") from exc
        self._db.changed()
        found = self.version(version_id)
        assert found is not None
        return found

    def version(self, version_id: str) -> VersionRow | None:
        """The version with its ``model`` and ``model.owner`` loaded."""
        with self._db.read() as s:
            return s.get(VersionRow, version_id)

    def find_version(self, model_id: int, digest: str) -> VersionRow | None:
        """The model's version made of the package with this content ``digest``."""
        with self._db.read() as s:
            return s.scalar(
                sa.select(VersionRow).where(
                    VersionRow.model_id == model_id, VersionRow.digest == digest
                )
            )

    def latest_version(self, model_id: int) -> VersionRow | None:
        with self._db.read() as s:
            return s.scalar(self._versions_of(model_id).limit(1))

    def versions(self, model_id: int) -> list[VersionRow]:
        """The model's versions, newest first."""
        with self._db.read() as s:
            return list(s.scalars(self._versions_of(model_id)).unique())

    @staticmethod
    def _versions_of(model_id: int) -> sa.Select[VersionRow]:
        return (
            sa.select(VersionRow)
            .where(VersionRow.model_id == model_id)
            .order_by(VersionRow.created_at.desc(), VersionRow.id.desc())
        )

    def delete_version(self, version_id: str) -> None:
        with self._db.write() as s:
            s.execute(sa.delete(VersionRow).where(VersionRow.id == version_id))
        self._db.changed()

    # --- builds (accepted pushes) --------------------------------------------------------
    def create_build(self, model_id: int, version_id: str, *, builder: str = "") -> BuildRow:
        """A push of ``model_id`` was accepted: its build starts (status ``building``).
        Keeps the model's newest :data:`BUILDS_KEPT` builds."""
        build = BuildRow(
            id=new_id(),
            model_id=model_id,
            version_id=version_id,
            status="building",
            error=None,
            log="",
            builder=builder,
            created_at=utcnow(),
            completed_at=None,
        )
        with self._db.write() as s:
            s.add(build)
            s.flush()
            kept = _newest_builds(BuildRow.model_id == model_id).with_only_columns(BuildRow.id)
            s.execute(
                sa.delete(BuildRow)
                .where(
                    BuildRow.model_id == model_id,
                    BuildRow.id.not_in(kept.limit(BUILDS_KEPT).scalar_subquery()),
                )
                .execution_options(synchronize_session=False)
            )
        return build

    def finish_build(
        self, build_id: str, status: str, *, error: str | None = None, log: str = ""
    ) -> BuildRow | None:
        """End a build still ``building``: ``failed`` (with the reason and the log) or
        ``succeeded``. None when there is no such build or it ended already."""
        if status not in ("failed", "succeeded"):
            raise ValueError(f"{status!r} is not a final build status")
        with self._db.write() as s:
            build = s.get(BuildRow, build_id)
            if build is None or build.status != "building":
                return None
            build.status = status
            build.error = error
            build.log = log
            build.completed_at = utcnow()
            s.flush()
            return build

    def build(self, build_id: str) -> BuildRow | None:
        with self._db.read() as s:
            return s.get(BuildRow, build_id)

    def latest_build(self, model_id: int) -> BuildRow | None:
        """The model's newest accepted push, whatever became of it."""
        with self._db.read() as s:
            return s.scalar(_newest_builds(BuildRow.model_id == model_id).limit(1))

    def build_of_version(self, version_id: str) -> BuildRow | None:
        """The newest build that makes (or made) the version ``version_id``."""
        with self._db.read() as s:
            return s.scalar(_newest_builds(BuildRow.version_id == version_id).limit(1))


def _newest_builds(where: sa.ColumnElement[bool]) -> sa.Select[BuildRow]:
    return sa.select(BuildRow).where(where).order_by(BuildRow.created_at.desc(), BuildRow.id.desc())

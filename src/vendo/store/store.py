"""The store: every record the platform keeps, behind blocking methods.

Call these methods off the event loop (``anyio.to_thread.run_sync`` or Starlette's
``run_in_threadpool``). Rows come back detached: read their attributes freely, change
records only through these methods.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vendo.errors import BadRequest, Conflict
from vendo.store.cache import ReadCache
from vendo.store.engine import Engines, create_engines, database_url, upgrade
from vendo.store.ids import hash_token, new_id, new_token, new_webhook_secret, utcnow
from vendo.store.metrics import final_metrics
from vendo.store.status import PROCESSING, STARTING, TERMINAL
from vendo.store.tables import (
    BuildRow,
    FileRow,
    JobRow,
    MetaRow,
    ModelRow,
    PredictionRow,
    TokenRow,
    UserRow,
    VersionRow,
    data_kept,
    deadline_pending,
    webhook_owed,
)

__all__ = ["CACHED_READS", "Page", "Store", "WriterBusy"]

# The reads the prediction path makes on every request (Store.peek / read_through).
CACHED_READS = frozenset({"authenticate_hash", "get_model", "get_version", "latest_version"})

T = TypeVar("T")

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


class Page(list[T]):
    """One page of rows, newest first, with the opaque cursors of its neighbours."""

    def __init__(
        self, rows: Sequence[T], next_cursor: str | None, previous_cursor: str | None
    ) -> None:
        super().__init__(rows)
        self.next_cursor = next_cursor
        self.previous_cursor = previous_cursor


def _encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, json.JSONDecodeError) as exc:
        raise BadRequest("invalid cursor") from exc
    if not isinstance(data, dict):
        raise BadRequest("invalid cursor")
    return data


class WriterBusy(Exception):
    """:meth:`Store.transaction_nowait` found SQLite's write lock taken."""


class Store:
    """Records of users, tokens, models, versions, predictions, files and jobs.

    ``Store.open(url)`` connects and runs the migrations; ``close()`` releases the
    connections. The job queue's own operations live in :mod:`vendo.queue`, which uses
    :meth:`write` to share a transaction with the prediction it enqueues.
    """

    def __init__(self, engines: Engines, *, cache_ttl: float = 0.0) -> None:
        self.engines = engines
        self._read = sessionmaker(engines.reader, expire_on_commit=False)
        self._write = sessionmaker(engines.writer, expire_on_commit=False)
        self._loop_conn: sa.Connection | None = None  # see transaction_nowait()
        # Tokens, models and versions for the prediction path: see peek().
        self.cache = ReadCache(cache_ttl)

    # --- lifecycle -------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, migrate: bool = True, cache_ttl: float = 0.0) -> Store:
        """Connect to ``url`` (SQLAlchemy form) and upgrade the schema to head."""
        engines = create_engines(url)
        if migrate:
            upgrade(engines.writer)
        return cls(engines, cache_ttl=cache_ttl)

    @classmethod
    def from_settings(
        cls, data_dir: Path, database: str | None, *, cache_ttl: float = 0.0
    ) -> Store:
        return cls.open(database_url(data_dir, database), cache_ttl=cache_ttl)

    def close(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        self.engines.dispose()

    @property
    def dialect(self) -> str:
        return self.engines.writer.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (never commits)."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends without an error.

        On SQLite it holds the one writer connection: keep the block short and never
        await inside it.
        """
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction on a Core connection, committed when the block ends
        without an error: for writes made of statements (no ORM unit of work)."""
        with self.engines.writer.begin() as conn:
            yield conn

    @property
    def writes_nowait(self) -> bool:
        """Whether :meth:`transaction_nowait` is available (SQLite)."""
        return self.engines.loop_writer is not None

    @contextmanager
    def transaction_nowait(self) -> Iterator[sa.Connection]:
        """:meth:`transaction` that never waits for a lock: :class:`WriterBusy` at once
        when another connection holds SQLite's write lock. SQLite only (see
        :attr:`writes_nowait`), for the short group commits that run on the event loop,
        one at a time. Its connection stays open between transactions and never
        checkpoints the WAL: call :meth:`checkpoint` now and then."""
        if self.engines.loop_writer is None:
            raise RuntimeError("transaction_nowait() needs SQLite")
        if self._loop_conn is None:
            self._loop_conn = self.engines.loop_writer.connect()
        conn = self._loop_conn
        try:
            transaction = conn.begin()  # BEGIN IMMEDIATE: take the lock now, or fail
        except (OperationalError, sqlite3.OperationalError) as exc:
            self._loop_conn = None
            conn.invalidate()
            reason = str(getattr(exc, "orig", exc))
            if "locked" in reason or "busy" in reason:
                raise WriterBusy(reason) from exc
            raise
        with transaction:
            yield conn

    def checkpoint(self, *, truncate: bool = False) -> None:
        """Copy what the WAL holds back into the SQLite file. ``PASSIVE`` waits for no
        one but cannot restart a WAL that a writer keeps appending to; ``truncate``
        (``TRUNCATE``) holds writers back for the moment it takes to finish the copy and
        empties the WAL. Without the latter now and then the WAL would grow without
        end. Blocking; no-op on PostgreSQL."""
        if self.engines.loop_writer is None:
            return
        mode = "TRUNCATE" if truncate else "PASSIVE"
        # The DBAPI connection: outside any transaction (the engine's would open one).
        raw = self.engines.reader.raw_connection()
        try:
            raw.cursor().execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        finally:
            raw.close()

    # --- cached reads ------------------------------------------------------------------
    def peek(self, name: str, *args: Hashable) -> Any:
        """What ``self.<name>(*args)`` returned lately, from memory (no I/O: safe on the
        event loop), else :data:`~vendo.store.cache.MISS`. For the reads of
        :data:`CACHED_READS` only; see :mod:`vendo.store.cache` for how fresh it is."""
        return self.cache.get((name, *args))

    def read_through(self, name: str, *args: Hashable) -> Any:
        """``self.<name>(*args)``, kept for :meth:`peek`."""
        if name not in CACHED_READS:
            raise ValueError(f"{name} is not a cached read")
        generation = self.cache.generation
        value = getattr(self, name)(*args)
        self.cache.put((name, *args), value, generation)
        return value

    def _changed_catalog(self) -> None:
        """Users, tokens, models or versions changed: forget cached reads."""
        self.cache.clear()

    # --- meta --------------------------------------------------------------------------
    def meta_value(self, key: str, default: str) -> str:
        """The server-wide value of ``key``, storing ``default`` the first time."""
        with self.write() as s:
            row = s.get(MetaRow, key)
            if row is None:
                row = MetaRow(key=key, value=default)
                s.add(row)
            return row.value

    # --- users and tokens --------------------------------------------------------------
    def create_user(
        self,
        username: str,
        *,
        type: str = "user",
        name: str = "",
        is_admin: bool = False,
    ) -> UserRow:
        """A new user or organization; :class:`Conflict` if the username is taken."""
        try:
            with self.write() as s:
                user = UserRow(
                    username=username,
                    type=type,
                    name=name or username,
                    is_admin=is_admin,
                    created_at=utcnow(),
                )
                s.add(user)
                s.flush()
        except IntegrityError as exc:
            raise Conflict(f"the username {username!r} is taken") from exc
        self._changed_catalog()
        return user

    def user_count(self) -> int:
        with self.read() as s:
            return int(s.scalar(sa.select(sa.func.count()).select_from(UserRow)) or 0)

    def get_user(self, user_id: int) -> UserRow | None:
        with self.read() as s:
            return s.get(UserRow, user_id)

    def get_user_by_name(self, username: str) -> UserRow | None:
        with self.read() as s:
            return s.scalar(sa.select(UserRow).where(UserRow.username == username))

    def create_token(self, user_id: int, token: str | None = None, name: str = "") -> str:
        """Store a token for the user (a fresh one unless given); returns it in clear,
        the only time it is available."""
        token = token or new_token()
        with self.write() as s:
            s.add(
                TokenRow(
                    user_id=user_id, token_hash=hash_token(token), name=name, created_at=utcnow()
                )
            )
        self._changed_catalog()
        return token

    def authenticate(self, token: str) -> tuple[UserRow, TokenRow] | None:
        """The user and token row for a presented token, or None."""
        return self.authenticate_hash(hash_token(token))

    def authenticate_hash(self, token_hash: str) -> tuple[UserRow, TokenRow] | None:
        """:meth:`authenticate` by the token's hash (the form :meth:`peek` keys by, so
        that no clear token is kept in memory)."""
        with self.read() as s:
            row = s.execute(
                sa.select(UserRow, TokenRow)
                .join(TokenRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.token_hash == token_hash)
            ).first()
            if row is None:
                return None
            return row[0], row[1]

    def ensure_admin(
        self, token: str | None, username: str = "admin"
    ) -> tuple[UserRow, str | None]:
        """On a fresh store create the admin and its token (``token`` if given, else a new
        one). Returns the admin and the clear token when one was just created, else None."""
        with self.read() as s:
            admin = s.scalar(
                sa.select(UserRow).where(UserRow.is_admin.is_(True)).order_by(UserRow.id)
            )
        if admin is not None:
            return admin, None
        admin = self.create_user(username, name="Administrator", is_admin=True)
        return admin, self.create_token(admin.id, token, name="admin")

    def webhook_secret(self, user_id: int) -> str:
        """The account's default webhook signing secret, made on first use."""
        with self.write() as s:
            user = s.get_one(UserRow, user_id)
            created = user.webhook_secret is None
            if created:
                user.webhook_secret = new_webhook_secret()
            secret = str(user.webhook_secret)
        if created:
            self._changed_catalog()
        return secret

    # --- models ------------------------------------------------------------------------
    def create_model(self, owner_id: int, name: str, **fields: Any) -> ModelRow:
        """A new model; ``fields`` are among description, readme, *_url, visibility,
        hardware. :class:`Conflict` if the owner already has a model of that name."""
        unknown = set(fields) - set(MODEL_FIELDS)
        if unknown:
            raise ValueError(f"unknown model fields: {sorted(unknown)}")
        try:
            with self.write() as s:
                model = ModelRow(owner_id=owner_id, name=name, created_at=utcnow(), **fields)
                s.add(model)
                s.flush()
                model_id = model.id
        except IntegrityError as exc:
            raise Conflict(f"a model named {name!r} already exists for this owner") from exc
        self._changed_catalog()
        found = self.get_model_by_id(model_id)
        assert found is not None
        return found

    def get_model_by_id(self, model_id: int) -> ModelRow | None:
        with self.read() as s:
            return s.get(ModelRow, model_id)

    def get_model(self, owner: str, name: str) -> ModelRow | None:
        with self.read() as s:
            return s.scalar(
                sa.select(ModelRow)
                .join(ModelRow.owner)
                .where(UserRow.username == owner, ModelRow.name == name)
            )

    def list_models(
        self,
        viewer_id: int | None,
        *,
        sort_by: str = "model_created_at",
        direction: str = "desc",
        cursor: str | None = None,
        query: str | None = None,
        limit: int = 100,
    ) -> Page[ModelRow]:
        """Public models plus the viewer's own (``viewer_id`` None: all models, for the
        admin), optionally matching ``query`` in owner, name, description or readme."""
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
            stmt = stmt.where(
                sa.or_(ModelRow.visibility == "public", ModelRow.owner_id == viewer_id)
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
        offset = int(_decode_cursor(cursor).get("o", 0)) if cursor else 0
        with self.read() as s:
            rows = list(s.scalars(stmt.offset(offset).limit(limit + 1)).unique())
        next_cursor = _encode_cursor({"o": offset + limit}) if len(rows) > limit else None
        previous = _encode_cursor({"o": max(0, offset - limit)}) if offset > 0 else None
        return Page(rows[:limit], next_cursor, previous)

    def update_model(self, model_id: int, **fields: Any) -> ModelRow:
        unknown = set(fields) - set(MODEL_FIELDS)
        if unknown:
            raise ValueError(f"unknown model fields: {sorted(unknown)}")
        with self.write() as s:
            model = s.get_one(ModelRow, model_id)
            for key, value in fields.items():
                setattr(model, key, value)
        self._changed_catalog()
        found = self.get_model_by_id(model_id)
        assert found is not None
        return found

    def delete_model(self, model_id: int) -> None:
        """Delete a model. Replicate's rule: only private models without versions
        (:class:`Conflict` otherwise)."""
        with self.write() as s:
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
        self._changed_catalog()

    def increment_run_count(self, model_id: int, session: Session | None = None) -> None:
        """One more run of the model; inside the caller's :meth:`write` transaction when
        ``session`` is given."""
        stmt = (
            sa.update(ModelRow)
            .where(ModelRow.id == model_id)
            .values(run_count=ModelRow.run_count + 1)
        )
        if session is not None:
            session.execute(stmt)
            return
        with self.write() as s:
            s.execute(stmt)

    def set_default_example(self, model_id: int, prediction_id: str | None) -> None:
        with self.write() as s:
            s.execute(
                sa.update(ModelRow)
                .where(ModelRow.id == model_id)
                .values(default_example_id=prediction_id)
            )
        self._changed_catalog()

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
            with self.write() as s:
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
        self._changed_catalog()
        found = self.get_version(version_id)
        assert found is not None
        return found

    def get_version(self, version_id: str) -> VersionRow | None:
        """The version with its ``model`` and ``model.owner`` loaded."""
        with self.read() as s:
            return s.get(VersionRow, version_id)

    def find_version(self, model_id: int, digest: str) -> VersionRow | None:
        """The model's version made of the package with this content ``digest``."""
        with self.read() as s:
            return s.scalar(
                sa.select(VersionRow).where(
                    VersionRow.model_id == model_id, VersionRow.digest == digest
                )
            )

    def latest_version(self, model_id: int) -> VersionRow | None:
        with self.read() as s:
            return s.scalar(
                sa.select(VersionRow)
                .where(VersionRow.model_id == model_id)
                .order_by(VersionRow.created_at.desc(), VersionRow.id.desc())
                .limit(1)
            )

    def list_versions(self, model_id: int) -> list[VersionRow]:
        with self.read() as s:
            return list(
                s.scalars(
                    sa.select(VersionRow)
                    .where(VersionRow.model_id == model_id)
                    .order_by(VersionRow.created_at.desc(), VersionRow.id.desc())
                ).unique()
            )

    def delete_version(self, version_id: str) -> None:
        with self.write() as s:
            s.execute(sa.delete(VersionRow).where(VersionRow.id == version_id))
        self._changed_catalog()

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
        with self.write() as s:
            s.add(build)
            s.flush()
            kept = (
                sa.select(BuildRow.id)
                .where(BuildRow.model_id == model_id)
                .order_by(BuildRow.created_at.desc(), BuildRow.id.desc())
                .limit(BUILDS_KEPT)
            )
            s.execute(
                sa.delete(BuildRow)
                .where(BuildRow.model_id == model_id, BuildRow.id.not_in(kept.scalar_subquery()))
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
        with self.write() as s:
            build = s.get(BuildRow, build_id)
            if build is None or build.status != "building":
                return None
            build.status = status
            build.error = error
            build.log = log
            build.completed_at = utcnow()
            s.flush()
            return build

    def get_build(self, build_id: str) -> BuildRow | None:
        with self.read() as s:
            return s.get(BuildRow, build_id)

    def latest_build(self, model_id: int) -> BuildRow | None:
        """The model's newest accepted push, whatever became of it."""
        with self.read() as s:
            return s.scalar(
                sa.select(BuildRow)
                .where(BuildRow.model_id == model_id)
                .order_by(BuildRow.created_at.desc(), BuildRow.id.desc())
                .limit(1)
            )

    def build_of_version(self, version_id: str) -> BuildRow | None:
        """The newest build that makes (or made) the version ``version_id``."""
        with self.read() as s:
            return s.scalar(
                sa.select(BuildRow)
                .where(BuildRow.version_id == version_id)
                .order_by(BuildRow.created_at.desc(), BuildRow.id.desc())
                .limit(1)
            )

    # --- predictions -------------------------------------------------------------------
    def insert_prediction(self, session: Session, prediction: PredictionRow) -> None:
        """Add a prediction inside a caller's :meth:`write` transaction (the queue
        enqueues its job in the same one)."""
        session.add(prediction)

    def get_prediction(self, prediction_id: str) -> PredictionRow | None:
        with self.read() as s:
            return s.get(PredictionRow, prediction_id)

    def list_predictions(
        self,
        owner_id: int | None,
        *,
        cursor: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        model_id: int | None = None,
        kind: str = "prediction",
        limit: int = 100,
    ) -> Page[PredictionRow]:
        """Newest first, keyset-paginated on (created_at, id)."""
        stmt = sa.select(PredictionRow).where(PredictionRow.kind == kind)
        if owner_id is not None:
            stmt = stmt.where(PredictionRow.owner_id == owner_id)
        if model_id is not None:
            stmt = stmt.where(PredictionRow.model_id == model_id)
        if created_after is not None:
            stmt = stmt.where(PredictionRow.created_at > created_after)
        if created_before is not None:
            stmt = stmt.where(PredictionRow.created_at < created_before)
        newer_than: tuple[datetime, str] | None = None
        if cursor:
            data = _decode_cursor(cursor)
            try:
                at = datetime.fromisoformat(str(data["t"]))
                pid = str(data["i"])
            except (KeyError, ValueError) as exc:
                raise BadRequest("invalid cursor") from exc
            if data.get("d") == "prev":
                newer_than = (at, pid)
                stmt = stmt.where(
                    sa.tuple_(PredictionRow.created_at, PredictionRow.id) > sa.tuple_(at, pid)
                ).order_by(PredictionRow.created_at.asc(), PredictionRow.id.asc())
            else:
                stmt = stmt.where(
                    sa.tuple_(PredictionRow.created_at, PredictionRow.id) < sa.tuple_(at, pid)
                )
        if newer_than is None:
            stmt = stmt.order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
        with self.read() as s:
            rows = list(s.scalars(stmt.limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        if newer_than is not None:
            rows.reverse()
            has_next, has_prev = True, more
        else:
            has_next, has_prev = more, cursor is not None
        next_cursor = prev_cursor = None
        if rows and has_next:
            last = rows[-1]
            next_cursor = _encode_cursor({"t": last.created_at.isoformat(), "i": last.id})
        if rows and has_prev:
            first = rows[0]
            prev_cursor = _encode_cursor(
                {"t": first.created_at.isoformat(), "i": first.id, "d": "prev"}
            )
        return Page(rows, next_cursor, prev_cursor)

    def mark_started(self, prediction_id: str, at: datetime | None = None) -> bool:
        """``starting`` -> ``processing`` with ``started_at``; False if it was not
        ``starting`` (already canceled, say)."""
        with self.write() as s:
            result = s.execute(
                sa.update(PredictionRow)
                .where(PredictionRow.id == prediction_id, PredictionRow.status == STARTING)
                .values(status=PROCESSING, started_at=at or utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    def append_logs(self, prediction_id: str, text: str) -> None:
        if not text:
            return
        with self.write() as s:
            s.execute(
                sa.update(PredictionRow)
                .where(PredictionRow.id == prediction_id)
                .values(logs=PredictionRow.logs + text)
            )

    def append_output(self, prediction_id: str, value: Any) -> None:
        """Append one iterator item: ``output`` becomes the list of items so far."""
        with self.write() as s:
            row = s.scalar(
                sa.select(PredictionRow).where(PredictionRow.id == prediction_id).with_for_update()
            )
            if row is None or row.status in TERMINAL:
                return
            current = row.output if isinstance(row.output, list) else []
            row.output = [*current, value]

    def finish(
        self,
        prediction_id: str,
        status: str,
        *,
        output: Any = None,
        error: str | None = None,
        metrics: dict[str, Any] | None = None,
        at: datetime | None = None,
        cancel_reason: str | None = None,
        keep_output: bool = False,
        session: Session | None = None,
    ) -> PredictionRow | None:
        """Move a prediction to a terminal state (once: a terminal one is left alone and
        None returned). ``metrics`` gains ``total_time`` (created -> completed) and keeps
        ``predict_time`` if given. With ``keep_output`` the accumulated iterator output
        stays (``output`` is ignored). ``session``: the caller's write transaction
        (``write()``), so that the change commits with the caller's other writes."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a terminal status")
        at = at or utcnow()
        with nullcontext(session) if session is not None else self.write() as s:
            row = s.scalar(
                sa.select(PredictionRow).where(PredictionRow.id == prediction_id).with_for_update()
            )
            if row is None or row.status in TERMINAL:
                return None
            merged = final_metrics(
                row.metrics, metrics, created_at=row.created_at, started_at=row.started_at, at=at
            )
            row.status = status
            row.completed_at = at
            row.error = error
            row.metrics = merged
            row.run_input = None
            if cancel_reason is not None:
                row.cancel_reason = cancel_reason
            if not keep_output:
                row.output = output
            s.flush()
            return row

    def overdue_predictions(self, now: datetime, limit: int = 500) -> list[PredictionRow]:
        """Unfinished predictions whose ``deadline`` has passed, earliest first, at most
        ``limit`` (the sweep that ends them comes back for the rest). An index read of
        the overdue ones only: its cost does not grow with the number queued."""
        with self.read() as s:
            return list(
                s.scalars(
                    sa.select(PredictionRow)
                    .where(
                        deadline_pending(),
                        PredictionRow.deadline <= now,
                        PredictionRow.status.in_((STARTING, PROCESSING)),
                    )
                    .order_by(PredictionRow.deadline)
                    .limit(limit)
                )
            )

    def owed_webhooks(self, limit: int = 1000) -> list[str]:
        """Ids of finished predictions whose ``completed`` webhook was never handed to
        the outbox (the server stopped first, or a restart finished them), oldest first."""
        with self.read() as s:
            return list(
                s.scalars(
                    sa.select(PredictionRow.id)
                    .where(
                        webhook_owed(),
                        PredictionRow.status.in_(tuple(TERMINAL)),
                    )
                    .order_by(PredictionRow.completed_at, PredictionRow.id)
                    .limit(limit)
                )
            )

    def mark_webhook_done(self, prediction_id: str) -> None:
        """The prediction's ``completed`` webhook is in the outbox's hands."""
        with self.write() as s:
            s.execute(
                sa.update(PredictionRow)
                .where(PredictionRow.id == prediction_id)
                .values(webhook_done=True)
            )

    def remove_prediction_data(
        self, completed_before: datetime, batch: int = 1000
    ) -> list[PredictionRow]:
        """Retention: clear input, output and logs of predictions completed before the
        given time (``data_removed``). Returns the rows as they were (id, owner,
        input folder), so the caller can delete their input folders and files.

        Candidates are found by an index read, then changed ``batch`` at a time in short
        write transactions: a sweep never holds SQLite's one writer for long, and keeps
        up however many predictions a period brings."""
        removed: list[PredictionRow] = []
        while True:
            with self.read() as s:
                found = s.execute(
                    sa.select(PredictionRow.id, PredictionRow.input_dir, PredictionRow.owner_id)
                    .where(
                        data_kept(),
                        PredictionRow.completed_at < completed_before,
                        PredictionRow.source == "api",
                    )
                    .order_by(PredictionRow.completed_at)
                    .limit(batch)
                ).all()
            if not found:
                return removed
            with self.write() as s:
                s.execute(
                    sa.update(PredictionRow)
                    .where(PredictionRow.id.in_([r.id for r in found]), data_kept())
                    .values(input={}, output=None, logs="", run_input=None, data_removed=True)
                    .execution_options(synchronize_session=False)
                )
            removed.extend(
                PredictionRow(id=r.id, input_dir=r.input_dir, owner_id=r.owner_id) for r in found
            )
            if len(found) < batch:
                return removed

    # --- files -------------------------------------------------------------------------
    def add_file(self, row: FileRow) -> FileRow:
        with self.write() as s:
            s.add(row)
        return row

    def get_file(self, file_id: str) -> FileRow | None:
        with self.read() as s:
            return s.get(FileRow, file_id)

    def list_files(
        self, owner_id: int, *, cursor: str | None = None, limit: int = 100
    ) -> Page[FileRow]:
        stmt = (
            sa.select(FileRow)
            .where(FileRow.owner_id == owner_id, FileRow.kind == "upload")
            .order_by(FileRow.created_at.desc(), FileRow.id.desc())
        )
        offset = int(_decode_cursor(cursor).get("o", 0)) if cursor else 0
        with self.read() as s:
            rows = list(s.scalars(stmt.offset(offset).limit(limit + 1)))
        next_cursor = _encode_cursor({"o": offset + limit}) if len(rows) > limit else None
        previous = _encode_cursor({"o": max(0, offset - limit)}) if offset > 0 else None
        return Page(rows[:limit], next_cursor, previous)

    def delete_file_row(self, file_id: str) -> None:
        with self.write() as s:
            s.execute(sa.delete(FileRow).where(FileRow.id == file_id))

    def expired_files(self, now: datetime, limit: int = 500) -> list[FileRow]:
        with self.read() as s:
            return list(s.scalars(sa.select(FileRow).where(FileRow.expires_at <= now).limit(limit)))

    def files_of_prediction(self, prediction_id: str) -> list[FileRow]:
        with self.read() as s:
            return list(s.scalars(sa.select(FileRow).where(FileRow.prediction_id == prediction_id)))

    # --- jobs (read side; claiming lives in vendo.queue) ---------------------------------
    def get_job(self, prediction_id: str) -> JobRow | None:
        with self.read() as s:
            return s.scalar(sa.select(JobRow).where(JobRow.prediction_id == prediction_id))

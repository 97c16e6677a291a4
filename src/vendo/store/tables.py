"""The platform's records as SQLAlchemy 2 tables.

One module holds every table so that Alembic sees the whole schema at once. Rows are
returned to callers detached (``expire_on_commit=False``): treat them as read-only
snapshots and change records only through :class:`vendo.store.Store`.

Timestamps are timezone-aware UTC on the Python side on every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "CLAIMED_SQL",
    "DEADLINE_PENDING_SQL",
    "JSON",
    "DATA_KEPT_SQL",
    "UNFINISHED_SQL",
    "WEBHOOK_OWED_SQL",
    "AgentRow",
    "Base",
    "BuildRow",
    "DeploymentRow",
    "CreditRow",
    "FileRow",
    "InstanceUsageRow",
    "JobRow",
    "MembershipRow",
    "MetaRow",
    "ModelRow",
    "PredictionRow",
    "ReleaseRow",
    "TokenRow",
    "UTCDateTime",
    "UserRow",
    "VersionRow",
    "WebhookDeliveryRow",
    "claimed",
    "data_kept",
    "deadline_pending",
    "job_queued",
    "set_transient",
    "transient_row",
    "unfinished",
    "webhook_owed",
]

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes everywhere; SQLite has no time zones, so store naive UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text


def _sqlite_text(value: datetime | None) -> str | None:
    """:meth:`UTCDateTime.process_bind_param` and SQLAlchemy's SQLite ``DATETIME``
    processor in one: the same text (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC) from
    ``isoformat``, in C, where the two steps took a Python string format each. Every
    prediction's row holds three."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use an aware UTC datetime")
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    """A user or an organization: the owner of models, predictions, files and tokens."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(16), default="user")  # user | organization
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    github_url: Mapped[str | None] = mapped_column(sa.Text)
    avatar_url: Mapped[str | None] = mapped_column(sa.Text)
    is_admin: Mapped[bool] = mapped_column(default=False)
    # whsec_ + base64(32 bytes): one per account (Standard Webhooks signing key).
    webhook_secret: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MembershipRow(Base):
    """A user's membership of an organization, with its role (``owner`` | ``member``)."""

    __tablename__ = "memberships"

    organization_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TokenRow(Base):
    """An API token; only its SHA-256 is stored. With ``organization_id`` it acts as
    that organization (its user must be a member); once ``revoked_at`` is set it
    authenticates no more."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_tokens_organization_id")
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name", name="uq_models_owner_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    visibility: Mapped[str] = mapped_column(sa.String(16), default="public")  # public|private
    description: Mapped[str | None] = mapped_column(sa.Text)
    readme: Mapped[str | None] = mapped_column(sa.Text)
    github_url: Mapped[str | None] = mapped_column(sa.Text)
    paper_url: Mapped[str | None] = mapped_column(sa.Text)
    license_url: Mapped[str | None] = mapped_column(sa.Text)
    weights_url: Mapped[str | None] = mapped_column(sa.Text)
    cover_image_url: Mapped[str | None] = mapped_column(sa.Text)
    hardware: Mapped[str] = mapped_column(sa.String(64), default="cpu")
    run_count: Mapped[int] = mapped_column(default=0)
    default_example_id: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    owner: Mapped[UserRow] = relationship(lazy="joined", innerjoin=True)


class VersionRow(Base):
    """One pushed, built version of a model. ``id`` is 64 lowercase hex, globally unique:
    a hash of the model's identity and the package's content digest (versions pushed
    before 0006 kept their id, the bare digest)."""

    __tablename__ = "versions"
    # One version per package content and model: pushing it again finds this one.
    __table_args__ = (sa.Index("ux_versions_model_digest", "model_id", "digest", unique=True),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model_id: Mapped[int] = mapped_column(
        sa.ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    # The package's content digest (vendo.packages.content_hash); None for versions
    # recorded without a package.
    digest: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cog_version: Mapped[str] = mapped_column(sa.String(32), default="")
    openapi_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Where the unpacked model package (cog.yaml, predict.py, ...) lives.
    package_path: Mapped[str] = mapped_column(sa.Text, default="")
    # Build result: environment path, python, build key, timings... (build's own shape).
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The parsed cog.yaml.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    build_log: Mapped[str] = mapped_column(sa.Text, default="")
    # A trained version's weights, passed to setup(weights) as COG_WEIGHTS: the local
    # path of the file its training stored (or a URL); None for pushed versions.
    weights: Mapped[str | None] = mapped_column(sa.Text)

    model: Mapped[ModelRow] = relationship(lazy="joined", innerjoin=True)


class BuildRow(Base):
    """One accepted push of a model: ``building``, then ``failed`` (``error``, ``log``)
    or ``succeeded``. The newest one per model is what the model shows as its latest
    build; a refused push (bad package, no access) records none."""

    __tablename__ = "builds"
    __table_args__ = (sa.Index("ix_builds_model_created", "model_id", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"))
    # The id the version has, or will have once built.
    version_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="building")
    error: Mapped[str | None] = mapped_column(sa.Text)
    # The log of a failed build (a version keeps its own in ``versions.build_log``).
    log: Mapped[str] = mapped_column(sa.Text, default="")
    # ``host:pid`` of the process building it: a build whose process is gone (the
    # server was killed) is reported as interrupted instead of building forever.
    builder: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


R = TypeVar("R", bound="Base")


def transient_row(cls: type[R], values: Mapping[str, Any]) -> R:
    """A new row that no session will ever hold, with ``values`` (attribute names) set
    straight into its ``__dict__``, where the mapped attributes read them. The mapped
    constructor does the same plus an attribute event per column, which costs more
    than all the rest of building a prediction. For rows written with Core statements
    (``vendo.queue.insert_prediction``), never through a session's unit of work.
    Made as the ORM makes a loaded row (its class manager's ``new_instance``), without
    the mapped ``__init__`` and its init event."""
    manager = _managers.get(cls)
    if manager is None:
        sa.orm.configure_mappers()  # what the mapped constructor would do first
        manager = _managers[cls] = sa.orm.instrumentation.manager_of_class(cls)
    row: R = manager.new_instance()
    row.__dict__.update(values)
    return row


_managers: dict[type[Any], Any] = {}


def set_transient(row: Base, values: Mapping[str, Any]) -> None:
    """Change a :func:`transient_row`'s values the same way."""
    row.__dict__.update(values)


# The condition of the partial index on unfinished predictions. A query that should use
# the index must say exactly this (``unfinished()``): SQLite proves a partial index
# usable from the query's text, which bound parameters would hide.
UNFINISHED_SQL = "status IN ('starting', 'processing')"
# Owed only once finished: a queued prediction with a webhook is not in the index, so
# the start-up read of owed webhooks costs nothing per queued prediction.
WEBHOOK_OWED_SQL = (
    "webhook IS NOT NULL AND webhook_done = false AND status IN ('succeeded', 'failed', 'canceled')"
)
DATA_KEPT_SQL = "data_removed = false"
# Predictions with a deadline not yet completed (every terminal state sets
# completed_at), by deadline: the deadline sweep reads only those past it, however many
# are queued. Not said with ``status``: SQLite would then take ix_predictions_unfinished,
# which holds every queued prediction, for the sweep.
DEADLINE_PENDING_SQL = "deadline IS NOT NULL AND completed_at IS NULL"
# Jobs a scheduler holds: what start-up recovers. Few (a server's concurrency), so a
# restart reads none of the queued ones.
CLAIMED_SQL = "state = 'claimed'"


def unfinished() -> sa.TextClause:
    """``WHERE`` clause: the prediction is starting or processing."""
    return sa.text("predictions." + UNFINISHED_SQL)


def _partial_index(name: str, *columns: str, where: str) -> sa.Index:
    """An index of the rows that match ``where`` only (both dialects support it)."""
    return sa.Index(name, *columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def data_kept() -> sa.TextClause:
    """``WHERE`` clause: retention has not removed the prediction's data yet."""
    return sa.text("predictions." + DATA_KEPT_SQL)


def webhook_owed() -> sa.TextClause:
    """``WHERE`` clause: the prediction is finished and has a webhook whose
    ``completed`` is not yet in the outbox's hands."""
    return sa.text("predictions." + WEBHOOK_OWED_SQL.replace(" AND ", " AND predictions."))


def deadline_pending() -> sa.TextClause:
    """``WHERE`` clause: the prediction has a deadline and has not completed."""
    return sa.text("predictions." + DEADLINE_PENDING_SQL.replace(" AND ", " AND predictions."))


def claimed() -> sa.TextClause:
    """``WHERE`` clause: the job is claimed by a scheduler."""
    return sa.text("jobs." + CLAIMED_SQL)


class PredictionRow(Base):
    """A prediction (or, with ``kind='training'``, a training)."""

    __tablename__ = "predictions"
    __table_args__ = (
        sa.Index("ix_predictions_owner_created", "owner_id", "created_at", "id"),
        # Only unfinished predictions are looked up by status (deadlines, recovery): a
        # partial index leaves the finished ones, nearly all, out of it.
        _partial_index("ix_predictions_unfinished", "status", where=UNFINISHED_SQL),
        # What the retention sweep looks for: data still kept, by completion time.
        _partial_index("ix_predictions_retention", "completed_at", where=DATA_KEPT_SQL),
        # Predictions owed a ``completed`` webhook (see Predictions.owed_webhooks): few, and
        # only finished ones with a webhook are ever in it.
        _partial_index("ix_predictions_webhook_owed", "id", where=WEBHOOK_OWED_SQL),
        # The deadline sweep (Predictions.overdue).
        _partial_index("ix_predictions_deadline", "deadline", where=DEADLINE_PENDING_SQL),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="prediction")
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    token_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tokens.id", ondelete="SET NULL"))
    model_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("models.id", ondelete="SET NULL"), index=True
    )
    model: Mapped[str] = mapped_column(sa.String(300))  # "owner/name"
    version_id: Mapped[str] = mapped_column(sa.String(64))
    deployment: Mapped[str | None] = mapped_column(sa.String(300))
    destination: Mapped[str | None] = mapped_column(sa.String(300))  # trainings
    # What the caller sent (secrets masked): shown by the API.
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What the runner gets: local file paths, real secrets. Cleared once terminal.
    run_input: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    input_dir: Mapped[str | None] = mapped_column(sa.Text)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    logs: Mapped[str] = mapped_column(sa.Text, default="")
    error: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="starting")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data_removed: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(sa.String(16), default="api")
    stream: Mapped[bool] = mapped_column(default=False)
    webhook: Mapped[str | None] = mapped_column(sa.Text)
    webhook_events_filter: Mapped[list[str] | None] = mapped_column(JSON)
    # The ``completed`` webhook is in the outbox's hands (or filtered out).
    webhook_done: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(sa.String(32))
    # The API root the prediction was created through: absolute URLs in webhooks and
    # other out-of-request renderings use it.
    base_url: Mapped[str | None] = mapped_column(sa.Text)


class FileRow(Base):
    """An uploaded file (``kind='upload'``), a prediction's output file (``'output'``) or a
    training's weights (``'weights'``, kept while a version runs with them)."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="upload")
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    prediction_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    name: Mapped[str] = mapped_column(sa.Text)
    content_type: Mapped[str] = mapped_column(sa.String(200))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    md5: Mapped[str] = mapped_column(sa.String(32))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Location inside the storage backend (a relative path for the local folder).
    key: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class JobRow(Base):
    """The durable queue: one row per accepted, not yet finished prediction run.

    ``state`` is ``queued`` until a scheduler claims it (``claimed``); the row is
    deleted when the run ends.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_claim", "pool", "state", "id"),
        # Start-up recovery reads the claimed jobs (of one worker on PostgreSQL) only.
        _partial_index("ix_jobs_claimed", "claimed_by", where=CLAIMED_SQL),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="predict")  # predict | train
    prediction_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    version_id: Mapped[str] = mapped_column(sa.String(64))
    # The queue the job waits in: its pool's key, ``version:<id>`` (the version's shared
    # pool), ``deployment:<owner>/<name>``, or ``train:<id>`` for the trainings of a
    # version, served by a runner in train mode (see vendo.status.pool_key).
    pool: Mapped[str] = mapped_column(sa.String(320))
    state: Mapped[str] = mapped_column(sa.String(16), default="queued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(200))
    # a cancel asked while the job was claimed: the reason, for the process running it
    # to find here when the cancel relayed over LISTEN/NOTIFY did not reach it
    cancel_requested: Mapped[str | None] = mapped_column(sa.String(64))


def job_queued() -> sa.ColumnElement[bool]:
    """``WHERE`` clause: the job is queued, for a read ordered by ``state, id`` within
    one pool (the order of ix_jobs_claim). Said as a range, ``state BETWEEN 'queued'
    AND 'queued'``: the same rows as ``=``, but PostgreSQL then cannot drop ``state``
    from the order, so it reads the version's queued jobs from ix_jobs_claim instead of
    walking the primary key past every other version's job (it thinks that cheap)."""
    state = cast(sa.Table, JobRow.__table__).c.state
    return state.between(sa.literal_column("'queued'"), sa.literal_column("'queued'"))


class DeploymentRow(Base):
    """A deployment: a name under an owner; what it runs is its newest release."""

    __tablename__ = "deployments"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name", name="uq_deployments_owner_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    owner: Mapped[UserRow] = relationship(lazy="joined", innerjoin=True)


class ReleaseRow(Base):
    """One release of a deployment: every change inserts the next number, and the
    newest is the current one (the older ones are its history)."""

    __tablename__ = "deployment_releases"
    __table_args__ = (
        sa.UniqueConstraint("deployment_id", "number", name="uq_deployment_releases_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(sa.ForeignKey("deployments.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"))
    version_id: Mapped[str] = mapped_column(sa.String(64))
    hardware: Mapped[str] = mapped_column(sa.String(64))
    min_instances: Mapped[int] = mapped_column()
    max_instances: Mapped[int] = mapped_column()
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    model: Mapped[ModelRow] = relationship(lazy="joined", innerjoin=True)
    created_by: Mapped[UserRow] = relationship(lazy="joined", innerjoin=True)


class MetaRow(Base):
    """Server-wide key/value settings that must be shared by every API process
    (the URL signing key, for one)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class WebhookDeliveryRow(Base):
    """A pending ``completed`` webhook (owned by ``vendo.webhooks.outbox``, which keeps
    its own Core definition of the same table)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # the webhook-id
    prediction_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    url: Mapped[str] = mapped_column(sa.Text)
    secret: Mapped[str] = mapped_column(sa.Text)
    event: Mapped[str] = mapped_column(sa.String(16))
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    attempts: Mapped[int] = mapped_column(default=0)
    # Unix seconds (wall clock), so they mean the same after a restart.
    next_attempt_at: Mapped[float] = mapped_column(sa.Float, index=True)
    created_at: Mapped[float] = mapped_column(sa.Float)
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class InstanceUsageRow(Base):
    """Seconds one runner instance spent in one state (``setting_up``, ``idle``,
    ``active``) between ``started_at`` and ``ended_at``. The scheduler's meter
    (:mod:`vendo.scheduler.metering`) adds up each instance's time per state and writes
    one row per instance and state every few seconds, not one per transition. Who pays
    for it is decided in :mod:`vendo.store.usage`, from ``shared``: the instance served a
    public model's shared pool (its time is free; the predictions on it are billed)."""

    __tablename__ = "instance_usage"
    __table_args__ = (sa.Index("ix_instance_usage_owner_started", "owner_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # ``<pool key>#<n>``: a version pool's key alone is 72 characters
    instance_id: Mapped[str] = mapped_column(sa.String(400))
    pool: Mapped[str] = mapped_column(sa.String(400))  # version:<id> | deployment:<owner/name>
    hardware: Mapped[str] = mapped_column(sa.String(64))
    # the account the instance's time belongs to: the model's (or deployment's) owner
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(sa.String(300))  # "owner/name"
    version_id: Mapped[str] = mapped_column(sa.String(64))
    deployment: Mapped[str | None] = mapped_column(sa.String(300))  # "owner/name"
    shared: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(sa.String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seconds: Mapped[float] = mapped_column(sa.Float)


class CreditRow(Base):
    """An account's credit: ``amount`` as of ``set_at``; what is left is that minus the
    cost of its usage since (:mod:`vendo.store.usage`). No row: unlimited."""

    __tablename__ = "credits"

    account_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(20, 6))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentRow(Base):
    """A live agent (``vendo agent``, scaled mode): what it serves and its last
    heartbeat. Its ``name`` is the ``claimed_by`` of the jobs it claims."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    hardware: Mapped[list[str]] = mapped_column(JSON)  # the SKUs it serves
    capacity: Mapped[dict[str, Any]] = mapped_column(JSON)  # cpus, memory_bytes, gpus
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)

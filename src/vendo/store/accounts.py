"""Accounts: users and organizations (the owners of models), organization memberships
and API tokens."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Mapping

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from vendo.errors import Conflict, FieldError, InvalidInput, NotFound
from vendo.store.database import Database
from vendo.store.ids import hash_token, new_token, new_webhook_secret, utcnow
from vendo.store.tables import MembershipRow, TokenRow, UserRow

__all__ = ["RESERVED_USERNAMES", "ROLES", "Accounts", "Identity", "check_username"]

#: an organization member's roles: both may see, push to and run the organization's
#: models; only an owner may delete them
ROLES = ("owner", "member")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# last_used_at is written at most this often per token (see Accounts.used)
LAST_USED_EVERY = 60.0


# The first segment of paths the server serves itself: an account of that name would
# have its model pages (/{owner}/{name}) hidden behind them.
RESERVED_USERNAMES = frozenset({"p", "static", "v1"})


def check_username(username: str, field_name: str = "username") -> None:
    """:class:`InvalidInput` naming ``field_name`` unless ``username`` is one (letters,
    digits, '-', '_'; at most 64, starting with a letter or digit; not reserved)."""
    if not _USERNAME.match(username):
        raise InvalidInput(
            [
                FieldError(
                    field_name,
                    "pattern",
                    "must be 1 to 64 letters, digits, '-' or '_', starting with a letter "
                    f"or digit; got {username[:80]!r}",
                )
            ]
        )
    if username.lower() in RESERVED_USERNAMES:
        taken = ", ".join(f"/{n}/" for n in sorted(RESERVED_USERNAMES))
        raise InvalidInput(
            [
                FieldError(
                    field_name,
                    "reserved",
                    f"{username!r} is the start of the server's own paths ({taken})",
                )
            ]
        )


@dataclass(frozen=True)
class Identity:
    """Who a token speaks for: its user, the token, the organization it is scoped to
    (None: the user itself) and the user's roles by organization id."""

    user: UserRow
    token: TokenRow
    organization: UserRow | None = None
    roles: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))


class Accounts:
    """Users, organizations, memberships and tokens. Every write that could change who
    a token is or what it may reach clears the store's read cache (``changed``)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # token id -> time.monotonic() of its last last_used_at write by this process
        self._last_written: dict[int, float] = {}

    # --- users and organizations ------------------------------------------------------

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
            with self._db.write() as s:
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
        self._db.changed()
        return user

    def user(self, user_id: int) -> UserRow | None:
        with self._db.read() as s:
            return s.get(UserRow, user_id)

    def user_named(self, username: str) -> UserRow | None:
        with self._db.read() as s:
            return s.scalar(sa.select(UserRow).where(UserRow.username == username))

    def users(self, type: str = "user") -> list[UserRow]:
        """Every user (or, with ``type="organization"``, organization), oldest first."""
        with self._db.read() as s:
            return list(s.scalars(sa.select(UserRow).where(UserRow.type == type).order_by("id")))

    def named(self, username: str, type: str) -> UserRow:
        """The user or organization called ``username``, else :class:`NotFound`."""
        found = self.user_named(username)
        if found is None or found.type != type:
            raise NotFound(f"no {type} named {username!r}")
        return found

    def create_organization(self, name: str, owner: str) -> UserRow:
        """A new organization, with the user ``owner`` as its first owner."""
        check_username(name, "name")
        first = self.named(owner, "user")
        organization = self.create_user(name, type="organization")
        self.add_member(name, first.username, "owner")
        return organization

    def add_member(self, organization: str, username: str, role: str = "member") -> MembershipRow:
        """Make ``username`` a member of ``organization`` with ``role`` (a member
        already: their role becomes ``role``)."""
        if role not in ROLES:
            raise InvalidInput(
                [FieldError("role", "enum", f"role must be one of {', '.join(ROLES)}")]
            )
        org = self.named(organization, "organization")
        user = self.named(username, "user")
        with self._db.write() as s:
            row = s.get(MembershipRow, (org.id, user.id))
            if row is None:
                row = MembershipRow(
                    organization_id=org.id, user_id=user.id, role=role, created_at=utcnow()
                )
                s.add(row)
            else:
                row.role = role
        self._db.changed()
        return row

    def members(self, organization_id: int) -> list[tuple[UserRow, str]]:
        """An organization's members and their roles, by username."""
        with self._db.read() as s:
            rows = s.execute(
                sa.select(UserRow, MembershipRow.role)
                .join(MembershipRow, MembershipRow.user_id == UserRow.id)
                .where(MembershipRow.organization_id == organization_id)
                .order_by(UserRow.username)
            ).all()
            return [(row[0], row[1]) for row in rows]

    def ensure_admin(
        self, token: str | None, username: str = "admin"
    ) -> tuple[UserRow, str | None]:
        """On a fresh store create the admin and its token (``token`` if given, else a new
        one). Returns the admin and the clear token when one was just created, else None."""
        with self._db.read() as s:
            admin = s.scalar(
                sa.select(UserRow).where(UserRow.is_admin.is_(True)).order_by(UserRow.id)
            )
        if admin is not None:
            return admin, None
        admin = self.create_user(username, name="Administrator", is_admin=True)
        return admin, self.create_token(admin.id, token, name="admin")

    def webhook_secret(self, user_id: int) -> str:
        """The account's default webhook signing secret, made on first use."""
        with self._db.write() as s:
            user = s.get_one(UserRow, user_id)
            created = user.webhook_secret is None
            if created:
                user.webhook_secret = new_webhook_secret()
            secret = str(user.webhook_secret)
        if created:
            self._db.changed()
        return secret

    # --- tokens -----------------------------------------------------------------------

    def create_token(self, user_id: int, token: str | None = None, name: str = "") -> str:
        """Store a token for the user (a fresh one unless given); returns it in clear,
        the only time it is available."""
        return self.issue_token(user_id, name=name, token=token)[1]

    def issue_token(
        self,
        user_id: int,
        *,
        name: str = "",
        organization_id: int | None = None,
        token: str | None = None,
    ) -> tuple[TokenRow, str]:
        """A new token of the user, scoped to ``organization_id`` when given (the user
        must be a member of it): its row and the token in clear, the only time it is
        available."""
        token = token or new_token()
        with self._db.write() as s:
            if organization_id is not None and (
                s.get(MembershipRow, (organization_id, user_id)) is None
            ):
                raise NotFound("the user is not a member of that organization")
            row = TokenRow(
                user_id=user_id,
                organization_id=organization_id,
                token_hash=hash_token(token),
                name=name,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
        self._db.changed()
        return row, token

    def token(self, token_id: int) -> TokenRow | None:
        with self._db.read() as s:
            return s.get(TokenRow, token_id)

    def tokens(
        self, user_id: int, organization_id: int | None = None
    ) -> list[tuple[TokenRow, str | None]]:
        """The user's tokens not revoked, oldest first, each with the username of the
        organization it is scoped to (only those scoped to ``organization_id`` when
        given)."""
        org = aliased(UserRow)
        query = (
            sa.select(TokenRow, org.username)
            .outerjoin(org, org.id == TokenRow.organization_id)
            .where(TokenRow.user_id == user_id, TokenRow.revoked_at.is_(None))
        )
        if organization_id is not None:
            query = query.where(TokenRow.organization_id == organization_id)
        with self._db.read() as s:
            return [(row[0], row[1]) for row in s.execute(query.order_by(TokenRow.id))]

    def revoke_token(self, token_id: int) -> TokenRow:
        """Revoke a token: from the next request on it authenticates no more (the read
        cache is cleared, here and, through the data dir's stamp, in the servers that
        share it). :class:`NotFound` if there is no such token not yet revoked."""
        with self._db.write() as s:
            row = s.get(TokenRow, token_id)
            if row is None or row.revoked_at is not None:
                raise NotFound(f"token {token_id} not found")
            row.revoked_at = utcnow()
        self._db.changed()
        return row

    def authenticate(self, token_hash: str) -> Identity | None:
        """Who presents the token with this hash (see
        :func:`~vendo.store.ids.hash_token`: the cache keys by it, so that no clear
        token is kept in memory), or None: unknown, revoked, or scoped to an
        organization its user no longer belongs to."""
        with self._db.read() as s:
            row = s.execute(
                sa.select(UserRow, TokenRow)
                .join(TokenRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.token_hash == token_hash, TokenRow.revoked_at.is_(None))
            ).first()
            if row is None:
                return None
            user, token = row[0], row[1]
            roles = {
                m.organization_id: m.role
                for m in s.scalars(sa.select(MembershipRow).where(MembershipRow.user_id == user.id))
            }
            organization = None
            if token.organization_id is not None:
                if token.organization_id not in roles:
                    return None
                organization = s.get(UserRow, token.organization_id)
            return Identity(user, token, organization, MappingProxyType(roles))

    def used(self, token_id: int, when: datetime | None = None) -> bool:
        """Record that a token was used, writing ``last_used_at`` at most once a
        minute per token and process: a write per request would put the database's
        write lock on every request's path for a figure nobody reads to the second.
        Returns whether it wrote."""
        now = time.monotonic()
        last = self._last_written.get(token_id)
        if last is not None and now - last < LAST_USED_EVERY:
            return False
        self._last_written[token_id] = now
        with self._db.write() as s:
            s.execute(
                sa.update(TokenRow)
                .where(TokenRow.id == token_id)
                .values(last_used_at=when or utcnow())
            )
        return True

    def due(self, token_id: int) -> bool:
        """Whether :meth:`used` would write now (no I/O: for the event loop)."""
        last = self._last_written.get(token_id)
        return last is None or time.monotonic() - last >= LAST_USED_EVERY

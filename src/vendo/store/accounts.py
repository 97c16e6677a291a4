"""Accounts: users (people and organizations, the owners of models) and their API
tokens."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from vendo.errors import Conflict
from vendo.store.database import Database
from vendo.store.ids import hash_token, new_token, new_webhook_secret, utcnow
from vendo.store.tables import TokenRow, UserRow

__all__ = ["Accounts"]


class Accounts:
    """Users and tokens. Every write here clears the store's read cache."""

    def __init__(self, db: Database) -> None:
        self._db = db

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

    def create_token(self, user_id: int, token: str | None = None, name: str = "") -> str:
        """Store a token for the user (a fresh one unless given); returns it in clear,
        the only time it is available."""
        token = token or new_token()
        with self._db.write() as s:
            s.add(
                TokenRow(
                    user_id=user_id, token_hash=hash_token(token), name=name, created_at=utcnow()
                )
            )
        self._db.changed()
        return token

    def authenticate(self, token_hash: str) -> tuple[UserRow, TokenRow] | None:
        """The user and token row for a presented token, by the token's hash (see
        :func:`~vendo.store.ids.hash_token`: the cache keys by it, so that no clear
        token is kept in memory), or None."""
        with self._db.read() as s:
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

"""Tenancy: who may see and change what, decided here for every /v1 route.

A caller is a user presenting one of their tokens. An unscoped token reaches the
user's own records and those of every organization the user belongs to; a token
scoped to an organization acts as that organization and reaches its records only (not
the user's own: scoping narrows a token, never widens it). The admin's unscoped token
reaches everything.

- Models (and their versions, builds, examples): public ones are seen by everyone;
  private ones only within reach. Within reach a caller may push and edit; deleting
  a model takes the owner's own account or an organization ``owner`` role.
- Predictions, trainings and files belong to the account that made them (the
  organization, for a scoped token) and are seen within reach. What is out of reach
  reads as absent (404), never as forbidden: the answer must not tell that it exists.
- Accounts (users, organizations, members) are the admin's; tokens are each user's own.

Routes ask the functions below; none compares owner ids itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from vendo.errors import Forbidden
from vendo.store import Identity, ModelRow, TokenRow, UserRow

__all__ = [
    "Caller",
    "can_delete",
    "can_see",
    "can_write",
    "may_manage_token",
    "may_publish_under",
    "model_viewers",
    "owns",
    "require_admin",
]


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: the token's user, the token (None: the server acting
    for the user, as when it pushes the examples at start-up), the organization it is
    scoped to (None: the user itself), the user's roles by organization id, and where
    the request came from: ``"web"`` for the web pages' session cookie, else ``"api"``
    (what a prediction records as its ``source``)."""

    user: UserRow
    token: TokenRow | None = None
    organization: UserRow | None = None
    roles: Mapping[int, str] = field(default_factory=dict)
    source: str = "api"

    @classmethod
    def of(cls, identity: Identity, source: str = "api") -> Caller:
        return cls(identity.user, identity.token, identity.organization, identity.roles, source)

    @property
    def is_admin(self) -> bool:
        """The admin's own, unscoped token."""
        return bool(self.user.is_admin) and self.organization is None

    @property
    def account(self) -> UserRow:
        """The account the caller acts as: what it creates belongs to it, and
        ``/v1/account`` describes it."""
        return self.organization or self.user

    @cached_property
    def reach(self) -> frozenset[int]:
        """The owner ids whose records the caller may see and change."""
        if self.organization is not None:
            return frozenset((self.organization.id,))
        return frozenset((self.user.id, *self.roles))


def owns(who: Caller, owner_id: int) -> bool:
    """Whether a record owned by ``owner_id`` (a prediction, a file, a private model)
    is within the caller's reach."""
    return who.is_admin or owner_id in who.reach


def can_see(who: Caller, model: ModelRow) -> bool:
    return model.visibility == "public" or owns(who, model.owner_id)


def can_write(who: Caller, model: ModelRow) -> bool:
    """Push versions to, edit the metadata of."""
    return owns(who, model.owner_id)


def can_delete(who: Caller, model: ModelRow) -> bool:
    """Delete: the owner's own account, or an ``owner`` of the owning organization."""
    if who.is_admin or model.owner_id == who.account.id:
        return True
    return model.owner_id in who.reach and who.roles.get(model.owner_id) == "owner"


def may_publish_under(who: Caller, owner: UserRow | None, owner_name: str) -> bool:
    """Whether the caller may create a model under ``owner_name`` (``owner``: that
    account, None when there is none yet: only the admin may create one by
    publishing, as an organization)."""
    if who.is_admin:
        return True
    if owner is None:
        return False
    return owner.id in who.reach


def model_viewers(who: Caller) -> frozenset[int] | None:
    """The owners whose private models the caller's model lists include (None: all)."""
    return None if who.is_admin else who.reach


def may_manage_token(who: Caller, token: TokenRow) -> bool:
    """See and revoke: the user's own tokens; through a token scoped to an
    organization, only the user's tokens scoped to it; the admin, any."""
    if who.is_admin:
        return True
    if token.user_id != who.user.id:
        return False
    return who.organization is None or token.organization_id == who.organization.id


def require_admin(who: Caller, what: str) -> None:
    """:class:`Forbidden` unless the caller is the admin."""
    if not who.is_admin:
        raise Forbidden(f"only the admin may {what}")

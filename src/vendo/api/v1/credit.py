"""Credit: refusing new work of accounts whose credit is used up, and stopping their
private pools.

An account's balance (:meth:`vendo.store.usage.Usage.balance`) costs a query, so it is
kept in memory for ``VENDO_CREDIT_CHECK_INTERVAL`` seconds: a prediction request of an
account seen recently makes no query at all (nor a thread hop). Setting a credit through
this server clears the account's entry at once; ``vendo credit set`` (another process)
takes effect within the interval. The same interval paces :meth:`CreditGate.watch`,
which stops the runners of accounts at zero (their queued work still runs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from anyio import to_thread

from vendo.errors import PaymentRequired
from vendo.store import ModelRow, Store, UserRow
from vendo.store.usage import Balance, Prices

__all__ = ["CreditGate", "out_of_credit"]

log = logging.getLogger(__name__)


class PoolStopper(Protocol):
    def stop_pools_of(self, owner_id: int) -> None: ...


def out_of_credit(username: str) -> PaymentRequired:
    return PaymentRequired(
        f"the credit of account {username} is used up: new predictions and trainings are "
        "refused until an admin sets more (`vendo credit set`)"
    )


class CreditGate:
    """Cached balances per account, and the watch that stops pools at zero."""

    def __init__(
        self,
        store: Store,
        prices: Prices,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._prices = prices
        self.ttl = ttl
        self._clock = clock
        self._known: dict[int, tuple[float, Balance]] = {}

    def peek(self, account_id: int) -> Balance | None:
        """The account's balance if known and fresh, else None (no I/O)."""
        found = self._known.get(account_id)
        if found is None or self._clock() >= found[0]:
            return None
        return found[1]

    def balance(self, account_id: int) -> Balance:
        """Read the balance (blocking) and keep it for ``ttl`` seconds."""
        balance = self._store.usage.balance(account_id, self._prices)
        self._known[account_id] = (self._clock() + self.ttl, balance)
        return balance

    async def exhausted(self, account_id: int) -> bool:
        found = self.peek(account_id)
        if found is None:
            found = await to_thread.run_sync(self.balance, account_id)
        return found.exhausted

    async def require(self, caller: UserRow, model: ModelRow) -> None:
        """Refuse (402) new work when the caller's credit is used up, or the model is
        private and its owner's is: a private model's runners bill its owner."""
        if await self.exhausted(caller.id):
            raise out_of_credit(caller.username)
        owner = model.owner_id
        if model.visibility != "public" and owner != caller.id and await self.exhausted(owner):
            raise out_of_credit(model.owner.username)

    def forget(self, account_id: int) -> None:
        """The account's credit changed here: read it afresh next time."""
        self._known.pop(account_id, None)

    def set(self, account_id: int, amount: Decimal | None) -> Balance:
        """Set the account's credit (blocking) and read its new balance."""
        self._store.usage.set_credit(account_id, amount)
        self.forget(account_id)
        return self.balance(account_id)

    async def watch(self, scheduler: PoolStopper) -> None:
        """Every ``ttl`` seconds: the accounts at zero have their pools stopped."""
        while True:
            await asyncio.sleep(max(self.ttl, 0.5))
            try:
                for account_id in await to_thread.run_sync(self._exhausted_accounts):
                    scheduler.stop_pools_of(account_id)
            except Exception:
                log.exception("credit check failed; retrying later")

    def _exhausted_accounts(self) -> list[int]:
        accounts = self._store.usage.limited_accounts()
        return [a for a in accounts if self.balance(a).exhausted]

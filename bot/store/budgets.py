"""Request budgets shared by every replica: a tenant's rate limit, kept by the database.

``SharedBudget(store, "xpanse", rate)`` gives requests slots ``1.1 / rate`` seconds apart
(a margin for scheduling delays), whichever replica or process asks: taking a slot is one short
transaction that locks the budget's row, reads the next free moment on the database's
clock, and moves it one interval on. The caller then sleeps until its slot. So the
requests of all replicas together are spaced like one client's, and their sum never
exceeds ``rate`` a second, which no per-process limiter can promise.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from bot.store.db import Store, database_now, insert
from bot.store.tables import rate_budgets

# Slots are this much further apart than ``1 / rate``: the time between a slot and the
# request reaching the tenant varies (a busy host delays one process by tens of
# milliseconds), and a limit counted over any sliding second must still never see more
# than ``rate`` requests. 10 % absorbs a delay of up to about one interval per second.
MARGIN = 1.1


class SharedBudget:
    """At most ``rate`` requests a second for ``name``, summed over every process on the store."""

    def __init__(self, store: Store, name: str, *, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.store = store
        self.name = name
        self.rate = rate
        self.interval = MARGIN / rate

    async def take(self) -> tuple[float, float]:
        """Reserve the next slot: (the slot, the time now), both on the database's clock."""
        async with self.store.transaction() as conn:
            await conn.execute(insert(conn, rate_budgets).values(name=self.name, next_at=0.0).on_conflict_do_nothing())
            now_, next_at = (
                await conn.execute(
                    sa.select(database_now(), rate_budgets.c.next_at)
                    .where(rate_budgets.c.name == self.name)
                    .with_for_update()
                )
            ).one()
            slot = max(float(now_), float(next_at))
            await conn.execute(
                sa.update(rate_budgets).where(rate_budgets.c.name == self.name).values(next_at=slot + self.interval)
            )
        return slot, float(now_)

    async def acquire(self, amount: float = 1) -> None:
        """Wait for a slot (the limiter interface the platform clients call)."""
        for _ in range(max(1, round(amount))):
            slot, now = await self.take()
            if slot > now:
                await asyncio.sleep(slot - now)

"""The expiry sweep: orders' own backstop for an expiration job that never came.

The expiration worker's arq job is the normal path to `expiration:complete`, but a job can
be lost (Redis restarted without its file, a result evicted, a job dropped after its
tries). Left alone such an order would hold its ticket forever, so every
EXPIRATION_SWEEP_INTERVAL_SECONDS each orders process cancels `created` orders more than
EXPIRATION_GRACE_SECONDS past `expiresAt`, through the same conditional cancel as the
listener (`OrderService.expire_overdue`). Replicas may sweep at once: the cancel is pinned
to the version read, so one write wins and `order:cancelled` leaves once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from orders.service import OrderService
from ticketing_common.mongo import utcnow
from ticketing_common.periodic import Periodic

logger = logging.getLogger("orders.sweeper")

# Orders read per query; a pass keeps reading until a query comes back short.
BATCH = 100


class ExpirySweeper:
    """Cancels overdue `created` orders now and then, in the background."""

    def __init__(
        self, service: OrderService, grace_seconds: float, interval_seconds: float
    ) -> None:
        self.service = service
        self.grace = timedelta(seconds=grace_seconds)
        self._loop = Periodic("expiry-sweeper", self.sweep, interval_seconds)

    async def sweep(self) -> int:
        """One pass: cancel every order overdue by more than the grace; the count cancelled."""
        cancelled = 0
        while True:
            due = await self.service.due_for_expiry(utcnow() - self.grace, BATCH)
            for order in due:
                if await self.service.expire_overdue(order):
                    cancelled += 1
                    logger.warning(
                        "order %s was still open %s after expiresAt %s (its expiration job "
                        "never came); cancelled",
                        order.id,
                        self.grace,
                        order.expires_at,
                    )
            # Every order read has left `created` (cancelled here or by someone else), so
            # the next query moves on; a short one means nothing more is due.
            if len(due) < BATCH:
                return cancelled

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

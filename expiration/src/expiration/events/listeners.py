import logging

from arq import ArqRedis
from nats.aio.msg import Msg

from expiration.jobs import JobMetrics, schedule_expiration
from ticketing_common.events import Listener, OrderCreatedEvent

logger = logging.getLogger("expiration")


class OrderCreatedListener(Listener[OrderCreatedEvent]):
    """Schedules the order's expiration job at its `expiresAt`."""

    payload_type = OrderCreatedEvent

    def __init__(self, pool: ArqRedis, metrics: JobMetrics | None = None) -> None:
        self.pool = pool
        self.metrics = metrics

    async def on_message(self, data: OrderCreatedEvent, msg: Msg) -> None:
        if await schedule_expiration(self.pool, data.id, data.expires_at):
            if self.metrics is not None:
                self.metrics.scheduled.inc()
            logger.info("order %s scheduled to expire at %s", data.id, data.expires_at)
        else:
            if self.metrics is not None:
                self.metrics.already_scheduled.inc()
            logger.info("order %s already scheduled or expired; nothing to do", data.id)

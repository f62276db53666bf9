"""Payments' own metric: `ticketing_payments_total{outcome}` (docs/OPERATIONS.md)."""

from __future__ import annotations

from ticketing_common.metrics import Metrics


class PaymentOutcomes:
    """How payment attempts and refunds end, one counter child per outcome:

    - `paid`: a charge recorded (once per payment, whoever records it first);
    - `declined`: an attempt that did not charge (card declined, authentication failed,
      intent cancelled), its order payable again;
    - `requires_action`: an attempt waiting for 3-D Secure in the browser;
    - `provider_error`: Stripe unreachable or unclear; the claim is released or kept
      `unknown` for a replay (answered 502);
    - `refunded`: a charge of a cancelled order refunded;
    - `refund_needs_attention`: a refund given up on after REFUND_MAX_ATTEMPTS: a person
      must refund it.
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        counter = (metrics or Metrics("payments")).counter(
            "ticketing_payments_total",
            "Payment attempts and refunds by outcome",
            ["outcome"],
        )
        self.paid = counter.labels("paid")
        self.declined = counter.labels("declined")
        self.requires_action = counter.labels("requires_action")
        self.provider_error = counter.labels("provider_error")
        self.refunded = counter.labels("refunded")
        self.refund_needs_attention = counter.labels("refund_needs_attention")

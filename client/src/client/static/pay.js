// The order page: the countdown, and the card payment through Stripe.js Elements.
// The real Stripe.js gives a PaymentMethod (pm_...); localstripe's stand-in answers
// createPaymentMethod with nothing, so then a card token (tok_...) is used, as the
// original client did. A card that asks for 3-D Secure makes payments answer 202 with
// the PaymentIntent's client secret: `confirmCardPayment(clientSecret)` (in both the real
// Stripe.js and the stand-in) runs the authentication, then payments is asked to record
// the outcome, which it learns from Stripe itself (the browser's word is not taken).
(function () {
  "use strict";

  var T = window.Ticketing;
  var form = document.querySelector("[data-pay]");
  var payable = document.querySelector("[data-payable]");
  var countdown = document.querySelector("[data-countdown]");
  var expiredNotice = document.querySelector("[data-expired-notice]");
  var paidNotice = document.querySelector("[data-paid-notice]");
  var status = document.querySelector("[data-order] .status");
  if (!form) {
    return;
  }
  var button = form.querySelector('[type="submit"]');
  var orderId = form.dataset.orderId;
  var paying = false;
  var paid = false;
  var expired = false;

  function formatSeconds(seconds) {
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function showExpired() {
    payable.hidden = true;
    expiredNotice.hidden = false;
  }

  // Counted from the server's figure, so a wrong clock on the device does not matter.
  var deadline = Date.now() + Number(countdown.dataset.secondsLeft) * 1000;
  var timer = window.setInterval(tick, 1000);
  function tick() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    countdown.textContent = formatSeconds(left);
    if (left <= 0) {
      window.clearInterval(timer);
      expired = true;
      if (!paying && !paid) {
        showExpired();
      }
    }
  }

  if (typeof window.Stripe !== "function") {
    button.disabled = true;
    T.showErrors(form, [{ message: "The payment form could not be loaded. Please reload the page." }]);
    return;
  }
  var stripe = window.Stripe(form.dataset.stripeKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var cardTouched = false;
  // Stripe's change event carries the card's own error; the stand-in's carries nothing.
  card.on("change", function (event) {
    cardTouched = true;
    if (event && event.error) {
      T.showErrors(form, [{ message: event.error.message }]);
    } else {
      T.clearErrors(form);
    }
  });

  function cardError(error) {
    return { error: (error && error.message) || "Your card details could not be read." };
  }

  async function cardToken() {
    var result = await stripe.createPaymentMethod({ type: "card", card: card });
    if (result && result.error) {
      return cardError(result.error);
    }
    if (result && result.paymentMethod) {
      return { id: result.paymentMethod.id };
    }
    var tokenResult = await stripe.createToken(card);
    if (tokenResult && tokenResult.token) {
      return { id: tokenResult.token.id };
    }
    return cardError(tokenResult && tokenResult.error);
  }

  // The order turns `complete` once the payment's event reached the orders service;
  // wait for it (a few seconds at most) so My Orders shows it.
  async function waitUntilComplete() {
    for (var attempt = 0; attempt < 20; attempt++) {
      try {
        var response = await fetch("/api/orders/" + encodeURIComponent(orderId), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) {
          var order = await response.json();
          if (order.status === "complete") {
            status.textContent = "complete";
            return;
          }
        }
      } catch (ignored) {
        // Keep waiting; My Orders shows the status either way.
      }
      await new Promise(function (resolve) { window.setTimeout(resolve, 500); });
    }
  }

  async function onPaid() {
    paid = true;
    window.clearInterval(timer);
    payable.hidden = true;
    paidNotice.hidden = false;
    await waitUntilComplete();
    window.location.assign("/orders");
  }

  async function pay() {
    var token = await cardToken();
    if (token.error) {
      T.showErrors(form, [{ message: token.error }]);
      return;
    }
    var response = await T.sendJson("POST", "/api/payments", { token: token.id, orderId: orderId });
    if (response.status === 202) {
      response = await authenticate(await response.json());
    }
    if (response.ok) {
      await onPaid();
      return;
    }
    T.showErrors(form, await T.readErrors(response));
  }

  // 3-D Secure: Stripe.js shows the bank's step; whatever it reports, payments decides
  // (a failed or abandoned step is cancelled there and the order stays payable).
  async function authenticate(payment) {
    try {
      await stripe.confirmCardPayment(payment.clientSecret);
    } catch (ignored) {
      // The outcome is read from Stripe by payments below.
    }
    return T.sendJson("POST", "/api/payments/" + encodeURIComponent(payment.id) + "/complete", {});
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (paying || paid) {
      return;
    }
    T.clearErrors(form);
    if (!cardTouched) {
      T.showErrors(form, [{ message: "Enter your card details." }]);
      return;
    }
    paying = true;
    button.disabled = true;
    try {
      await pay();
    } catch (error) {
      T.showErrors(form, [{ message: T.UNREACHABLE }]);
    } finally {
      paying = false;
      if (!paid) {
        button.disabled = false;
        if (expired) {
          showExpired();
        }
      }
    }
  });
})();

// Forms submit JSON to the API from the browser and show the API's errors[] on the page.
// A form opts in with data-api="/api/..." and data-next="/where/to/go" (`{id}` is replaced
// by the id the API answers with).
(function () {
  "use strict";

  var FALLBACK = "Something went wrong. Please try again.";
  var UNREACHABLE = "Could not reach the server. Please check your connection and try again.";

  function errorBox(form) {
    return form.querySelector("[data-errors]");
  }

  function clearErrors(form) {
    var box = errorBox(form);
    if (box) {
      box.hidden = true;
      box.querySelector("ul").replaceChildren();
    }
    form.querySelectorAll("[aria-invalid]").forEach(function (input) {
      input.removeAttribute("aria-invalid");
    });
  }

  // errors: [{message, field?}] as the API answers them.
  function showErrors(form, errors) {
    var box = errorBox(form);
    var list = box.querySelector("ul");
    list.replaceChildren();
    errors.forEach(function (error) {
      var item = document.createElement("li");
      item.textContent = error.message || FALLBACK;
      list.appendChild(item);
      if (error.field) {
        var input = form.querySelector('[name="' + CSS.escape(error.field) + '"]');
        if (input) {
          input.setAttribute("aria-invalid", "true");
        }
      }
    });
    box.hidden = false;
  }

  async function readErrors(response) {
    try {
      var body = await response.json();
      if (body && Array.isArray(body.errors) && body.errors.length) {
        return body.errors;
      }
    } catch (ignored) {
      // Not JSON: a gateway error page, say.
    }
    return [{ message: FALLBACK + " (" + response.status + ")" }];
  }

  async function sendJson(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function submitForm(form, event) {
    event.preventDefault();
    var button = form.querySelector('[type="submit"]');
    if (button.disabled) {
      return;
    }
    clearErrors(form);
    button.disabled = true;
    var body = {};
    new FormData(form).forEach(function (value, name) {
      body[name] = typeof value === "string" ? value : "";
    });
    try {
      var response = await sendJson(form.dataset.method || "POST", form.dataset.api, body);
      if (response.ok) {
        var data = await response.json().catch(function () { return {}; });
        var next = form.dataset.next || "/";
        window.location.assign(next.replace("{id}", encodeURIComponent(data.id || "")));
        return;
      }
      showErrors(form, await readErrors(response));
    } catch (error) {
      showErrors(form, [{ message: UNREACHABLE }]);
    }
    button.disabled = false;
  }

  // "12" or "12.5" becomes "12.00" / "12.50" when the field is left; anything else stays
  // as typed, so the API's message explains it.
  function formatPrice(input) {
    var match = /^(\d+)(?:\.(\d{0,2}))?$/.exec(input.value.trim());
    if (match) {
      input.value = match[1] + "." + ((match[2] || "") + "00").slice(0, 2);
    }
  }

  document.querySelectorAll("form[data-api]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      submitForm(form, event);
    });
  });
  document.querySelectorAll("input[data-price]").forEach(function (input) {
    input.addEventListener("blur", function () {
      formatPrice(input);
    });
  });

  window.Ticketing = {
    clearErrors: clearErrors,
    showErrors: showErrors,
    readErrors: readErrors,
    sendJson: sendJson,
    UNREACHABLE: UNREACHABLE,
  };
})();

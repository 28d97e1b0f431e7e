/*
 * django-sessionkit: the consent banner of {% consent_banner %}.
 *
 * - Posts the banner's form with fetch (JSON answer, no reload), then hides
 *   the banner, announces the saved choice and moves the focus back where
 *   it was before the banner (or to <main>).
 * - Runs deferred scripts once their category is granted:
 *     <script type="text/plain" data-consent="analytics" src="..."></script>
 *     <script type="text/plain" data-consent="analytics" nonce="...">...</script>
 *   on load from the consent cookie, and right after the visitor accepts.
 *   Several keys, separated by spaces, must all be granted.
 * - Shows the cacheable banner (rendered hidden) when the cookie holds no
 *   decision for the current revision.
 * - Tells other scripts of each decision with a "sessionkit:consent" event
 *   on document (detail: the endpoint's JSON answer); consent-gcm.js
 *   updates Google Consent Mode from it.
 *
 * The cookie is signed by the server (django.core.signing); its first part
 * is base64url JSON, readable here: {"v":1,"r":revision,"g":[keys],"x":[keys]}.
 * Reading it never grants more than the server would: a forged cookie runs
 * scripts in the forger's own browser only, and the server ignores it.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var config = {};
  try {
    config = JSON.parse(script.getAttribute("data-sessionkit-consent-config") || "{}");
  } catch (error) {
    config = {};
  }
  var required = config.required || [];
  var gpcKeys = config.gpc || [];

  function readCookie(name) {
    var pairs = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < pairs.length; i++) {
      var at = pairs[i].indexOf("=");
      if (pairs[i].slice(0, at) === name) {
        return decodeURIComponent(pairs[i].slice(at + 1).replace(/^"|"$/g, ""));
      }
    }
    return null;
  }

  /* The decision in the consent cookie for the current revision, or null. */
  function decision() {
    var value = readCookie(config.cookie || "sessionkit_consent");
    if (!value) {
      return null;
    }
    try {
      var part = value.split(":")[0].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) {
        part += "=";
      }
      var payload = JSON.parse(atob(part));
      if (payload.v !== 1 || payload.r !== config.revision || !Array.isArray(payload.g)) {
        return null;
      }
      return payload;
    } catch (error) {
      return null;
    }
  }

  /* Whether category key is granted by payload (required ones always). */
  function grantedBy(payload, key) {
    if (required.indexOf(key) !== -1) {
      return true;
    }
    if (!payload || payload.g.indexOf(key) === -1) {
      return false;
    }
    // As on the server: the Global Privacy Control signal refuses a "gpc"
    // category unless it was switched on explicitly ("x").
    var overrides = payload.x || [];
    return !(gpcKeys.indexOf(key) !== -1 && navigator.globalPrivacyControl === true &&
      overrides.indexOf(key) === -1);
  }

  /* Replace each deferred script whose categories are all granted by a
   * live copy (a text/plain script never runs; a new one does). */
  function runDeferred(isGranted) {
    var deferred = document.querySelectorAll('script[type="text/plain"][data-consent]');
    Array.prototype.forEach.call(deferred, function (element) {
      var keys = element.getAttribute("data-consent").split(/\s+/).filter(Boolean);
      if (!keys.length || !keys.every(isGranted)) {
        return;
      }
      var live = document.createElement("script");
      Array.prototype.forEach.call(element.attributes, function (attribute) {
        if (attribute.name !== "type" && attribute.name !== "nonce") {
          live.setAttribute(attribute.name, attribute.value);
        }
      });
      if (element.nonce) {
        live.nonce = element.nonce;
      }
      // Scripts added by a script are async; keep the page's order.
      live.async = false;
      if (!element.src) {
        live.text = element.text;
      }
      live.setAttribute("data-consent-ran", "");
      element.parentNode.replaceChild(live, element);
    });
  }

  var payload = decision();
  runDeferred(function (key) {
    return grantedBy(payload, key);
  });

  var banner = document.querySelector('[data-sessionkit-consent="banner"]');
  if (!banner) {
    return;
  }
  var form = banner.querySelector('[data-sessionkit-consent="form"]');
  var error = banner.querySelector('[data-sessionkit-consent="error"]');
  var announce = document.querySelector('[data-sessionkit-consent="announce"]');
  if (banner.hasAttribute("data-cacheable")) {
    if (!payload || String(payload.r) !== banner.getAttribute("data-revision")) {
      var gpcNote = banner.querySelector('[data-sessionkit-consent="gpc"]');
      if (gpcNote && navigator.globalPrivacyControl === true) {
        gpcNote.hidden = false;
      }
      banner.hidden = false;
    }
  }

  // Where the focus was before it entered the banner, to give it back.
  var focusBefore = null;
  document.addEventListener("focusin", function (event) {
    if (!banner.contains(event.target)) {
      focusBefore = event.target;
    }
  });

  function csrfToken() {
    var field = form.querySelector('input[name="csrfmiddlewaretoken"]');
    if (field) {
      return Promise.resolve(field.value);
    }
    // The cacheable banner carries no token (it would make the page vary
    // per visitor): take one from the preferences page, which sets the
    // CSRF cookie too.
    return fetch(banner.getAttribute("data-preferences-url"), {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("preferences page: " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var found = page.querySelector('input[name="csrfmiddlewaretoken"]');
        if (!found) {
          throw new Error("no CSRF token on the preferences page");
        }
        return found.value;
      });
  }

  function decided(answer) {
    banner.hidden = true;
    runDeferred(function (key) {
      return answer.choices ? answer.choices[key] === true : false;
    });
    document.dispatchEvent(new CustomEvent("sessionkit:consent", { detail: answer }));
    if (announce) {
      announce.textContent = banner.getAttribute("data-saved") || "";
    }
    var target = focusBefore && document.contains(focusBefore) ? focusBefore : null;
    if (!target) {
      target = document.querySelector("main, [role=main]") || document.body;
      if (!target.hasAttribute("tabindex")) {
        target.setAttribute("tabindex", "-1");
      }
    }
    target.focus({ preventScroll: target === document.body });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var submitter = event.submitter;
    var data = new FormData(form);
    data.set("action", submitter && submitter.value ? submitter.value : "save");
    error.hidden = true;
    form.setAttribute("aria-busy", "true");
    csrfToken()
      .then(function (token) {
        data.set("csrfmiddlewaretoken", token);
        // form.action would be the buttons named "action".
        return fetch(form.getAttribute("action"), {
          method: "POST",
          body: data,
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" },
        });
      })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("consent endpoint: " + response.status);
        }
        return response.json();
      })
      .then(decided)
      .catch(function () {
        error.hidden = false;
        error.setAttribute("role", "alert");
      })
      .then(function () {
        form.removeAttribute("aria-busy");
      });
  });
})();

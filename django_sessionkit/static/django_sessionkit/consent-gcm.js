/*
 * django-sessionkit: Google Consent Mode v2 for {% google_consent_mode %}.
 *
 * Loaded without defer or async in <head>, before gtag.js or Tag Manager:
 * sets the defaults at once (every mapped type "denied", from data-defaults),
 * then "update"s them from the consent cookie (a decision for the current
 * revision) and after each decision of the banner (the "sessionkit:consent"
 * event of consent.js, whose detail.google holds the mapped types).
 */
(function () {
  "use strict";

  var script = document.currentScript;
  function json(name, fallback) {
    try {
      return JSON.parse(script.getAttribute(name) || "") || fallback;
    } catch (error) {
      return fallback;
    }
  }
  var defaults = json("data-defaults", {});
  var config = json("data-sessionkit-consent-config", {});
  var wait = parseInt(script.getAttribute("data-wait-for-update") || "0", 10);

  window.dataLayer = window.dataLayer || [];
  // gtag.js reads Arguments objects from the data layer, not arrays.
  window.gtag = window.gtag || function () {
    window.dataLayer.push(arguments);
  };

  var initial = {};
  Object.keys(defaults).forEach(function (kind) {
    initial[kind] = defaults[kind];
  });
  if (wait > 0) {
    initial.wait_for_update = wait;
  }
  window.gtag("consent", "default", initial);

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

  /* The Consent Mode types granted by the cookie's decision, or null. */
  function fromCookie() {
    var value = readCookie(config.cookie || "sessionkit_consent");
    if (!value) {
      return null;
    }
    var payload;
    try {
      var part = value.split(":")[0].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) {
        part += "=";
      }
      payload = JSON.parse(atob(part));
    } catch (error) {
      return null;
    }
    if (!payload || payload.v !== 1 || payload.r !== config.revision || !Array.isArray(payload.g)) {
      return null;
    }
    var gpcSignal = navigator.globalPrivacyControl === true;
    var overrides = payload.x || [];
    var state = {};
    Object.keys(defaults).forEach(function (kind) {
      state[kind] = defaults[kind];
    });
    Object.keys(config.google || {}).forEach(function (key) {
      var granted = (config.required || []).indexOf(key) !== -1 || (
        payload.g.indexOf(key) !== -1 &&
        !(gpcSignal && (config.gpc || []).indexOf(key) !== -1 && overrides.indexOf(key) === -1)
      );
      if (granted) {
        config.google[key].forEach(function (kind) {
          state[kind] = "granted";
        });
      }
    });
    return state;
  }

  var stored = fromCookie();
  if (stored) {
    window.gtag("consent", "update", stored);
  }

  document.addEventListener("sessionkit:consent", function (event) {
    if (event.detail && event.detail.google) {
      window.gtag("consent", "update", event.detail.google);
    }
  });
})();

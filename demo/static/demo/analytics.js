/*
 * The demo's stand-in for an analytics script. The page loads it as
 * <script type="text/plain" data-consent="analytics">, so it never runs
 * until the visitor grants "analytics"; consent.js then runs it. It sets an
 * analytics cookie, as a real one would, and says on the page that it ran.
 */
(function () {
  "use strict";
  document.cookie = "_ga=GA1.1.demo; path=/; max-age=3600; samesite=lax";
  var log = document.getElementById("analytics-log");
  if (log) {
    log.textContent = "Analytics script ran at " + new Date().toLocaleTimeString() +
      " (analytics cookies allowed).";
  }
})();

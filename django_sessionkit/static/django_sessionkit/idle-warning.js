/*
 * django-sessionkit: the idle warning of {% sessionkit_idle_warning %}.
 *
 * No dependencies, no inline script or style, no eval: it runs under a strict
 * Content-Security-Policy (script-src 'self'; style-src 'self').
 *
 * - Counts down to the session's idle deadline (never later than its absolute
 *   deadline), on the server's clock: the page and every response carry the
 *   server's "now", so a wrong client clock does not matter.
 * - Shows the warning data-warn-before seconds before the deadline, after
 *   asking the status URL (a passive GET that extends nothing) whether
 *   activity elsewhere moved the deadline.
 * - "Stay signed in" POSTs to the keep-alive URL with the CSRF token; the
 *   server extends the idle deadline, never past the absolute one.
 * - When the server says the session is over (401), goes to the login URL.
 * - Tabs of the same origin share one session cookie, so they share what they
 *   learn (BroadcastChannel, or "storage" events where that is missing): the
 *   newest news, by server time, wins.
 * - Fills elements with data-sessionkit-countdown="idle" or "absolute"
 *   anywhere on the page with a live countdown. The ticking text is hidden
 *   from screen readers (aria-hidden); a hidden sibling says the time in
 *   whole minutes, and a polite live region announces 5 minutes, 1 minute and
 *   30 seconds before the sign-out. A <time> gets a duration ("PT4M30S").
 *   Buttons with data-sessionkit-countdown-toggle hide and show the page's
 *   countdowns (WCAG 2.2.2); the choice is kept in localStorage.
 * - The warning never takes the focus from a field being typed in: it is
 *   announced instead, and placed so that it does not cover the field.
 *   Otherwise it focuses the card itself (role="alertdialog"), never a
 *   button, so a key pressed next cannot sign out. Escape closes it.
 */
(function () {
  "use strict";

  const CHANNEL = "django-sessionkit";
  const TICK_MS = 1000;
  // Pauses between status checks: after an answer, and after a failure.
  const RECHECK_MS = 1000;
  const RETRY_MS = 5000;
  // Seconds before the sign-out at which screen readers are told the time.
  const THRESHOLDS = [300, 60, 30];
  const HIDE_KEY = "django-sessionkit-countdown";
  // Input types a person types text into.
  const TEXT_INPUT =
    /^(?:text|search|email|url|tel|password|number|date|datetime-local|month|week|time)$/;

  const root = document.querySelector("[data-sessionkit-idle-warning]");
  if (!root || root.sessionkitIdleWarning) {
    return;
  }
  root.sessionkitIdleWarning = true;

  const data = root.dataset;
  const warnBefore = Math.max(0, Number(data.warnBefore) || 0) * 1000;
  const whenElements = Array.from(root.querySelectorAll("[data-sessionkit-when]"));
  const errorElement = root.querySelector("[data-sessionkit-error]");
  const stayButton = root.querySelector('[data-sessionkit-action="keep-alive"]');
  const announcer = document.querySelector("[data-sessionkit-announce]");
  const titleElement = document.getElementById(root.getAttribute("aria-labelledby"));
  const messageElement = document.getElementById(root.getAttribute("aria-describedby"));

  // -- Time --------------------------------------------------------------------

  function parseTime(text) {
    if (typeof text === "number") {
      return Number.isFinite(text) ? text : null;
    }
    if (!text) {
      return null;
    }
    // Python writes microseconds; Date.parse is only required to read ms.
    const ms = Date.parse(String(text).replace(/(\.\d{3})\d+/, "$1"));
    return Number.isFinite(ms) ? ms : null;
  }

  // The client's clock when the page's first byte arrived: the server's
  // data-now was taken just before.
  function pageResponseTime() {
    const entries = performance.getEntriesByType
      ? performance.getEntriesByType("navigation")
      : [];
    const nav = entries[0];
    if (nav && nav.responseStart > 0) {
      return Date.now() - (performance.now() - nav.responseStart);
    }
    return Date.now();
  }

  function pageFromCache() {
    const nav = performance.getEntriesByType
      ? performance.getEntriesByType("navigation")[0]
      : null;
    return Boolean(
      nav &&
        (nav.type === "back_forward" ||
          (nav.transferSize === 0 && nav.decodedBodySize > 0))
    );
  }

  // All deadlines are on the server's clock; skew turns client time into it.
  const session = {
    idle: parseTime(data.idleDeadline),
    absolute: parseTime(data.absoluteDeadline),
    at: parseTime(data.now), // the server time these deadlines were read at
  };
  let skew = session.at === null ? 0 : session.at - pageResponseTime();
  let csrfToken = data.csrfToken || "";

  function serverNow() {
    return Date.now() + skew;
  }

  // The idle deadline as shown and enforced: never after the absolute one.
  function idleDeadline() {
    if (session.idle === null) {
      return session.absolute;
    }
    if (session.absolute === null) {
      return session.idle;
    }
    return Math.min(session.idle, session.absolute);
  }

  // Whether "Stay signed in" can still help.
  function isFinal() {
    return (
      session.absolute !== null &&
      (session.idle === null || session.idle >= session.absolute)
    );
  }

  // -- Countdowns --------------------------------------------------------------

  const locale = document.documentElement.lang || undefined;
  let dayFormat = null;
  try {
    dayFormat = new Intl.NumberFormat(locale, {
      style: "unit",
      unit: "day",
      unitDisplay: "long",
    });
  } catch (error) {
    dayFormat = null;
  }

  function unitFormat(unit) {
    try {
      return new Intl.NumberFormat(locale, { style: "unit", unit, unitDisplay: "long" });
    } catch (error) {
      return null;
    }
  }

  const unitFormats = {
    day: dayFormat,
    hour: unitFormat("hour"),
    minute: unitFormat("minute"),
    second: unitFormat("second"),
  };
  let listFormat = null;
  try {
    listFormat = new Intl.ListFormat(locale, { style: "long", type: "unit" });
  } catch (error) {
    listFormat = null;
  }

  function formatUnit(unit, number) {
    const format = unitFormats[unit];
    return format ? format.format(number) : `${number} ${unit}${number === 1 ? "" : "s"}`;
  }

  // The time left as a screen reader says it: whole minutes (rounded up), and
  // "30 seconds" at the very end. It changes once a minute at most.
  function spokenRemaining(ms) {
    const seconds = Math.max(0, Math.ceil(ms / 1000));
    if (seconds <= 30) {
      return formatUnit("second", 30);
    }
    let minutes = Math.ceil(seconds / 60);
    const days = Math.floor(minutes / 1440);
    minutes %= 1440;
    const hours = Math.floor(minutes / 60);
    minutes %= 60;
    const parts = [];
    if (days > 0) {
      parts.push(formatUnit("day", days));
    }
    if (hours > 0) {
      parts.push(formatUnit("hour", hours));
    }
    if (minutes > 0) {
      parts.push(formatUnit("minute", minutes));
    }
    return listFormat ? listFormat.format(parts) : parts.join(" ");
  }

  // An ISO 8601 duration, the value of <time datetime> for a time span.
  function isoDuration(ms) {
    let seconds = Math.max(0, Math.ceil(ms / 1000));
    const days = Math.floor(seconds / 86400);
    seconds %= 86400;
    const hours = Math.floor(seconds / 3600);
    seconds %= 3600;
    const minutes = Math.floor(seconds / 60);
    seconds %= 60;
    let time = "";
    if (hours > 0) {
      time += `${hours}H`;
    }
    if (minutes > 0) {
      time += `${minutes}M`;
    }
    if (seconds > 0 || (days === 0 && time === "")) {
      time += `${seconds}S`;
    }
    return (days > 0 ? `P${days}D` : "P") + (time ? `T${time}` : "");
  }

  function pad(number) {
    return String(number).padStart(2, "0");
  }

  function formatRemaining(ms) {
    let seconds = Math.max(0, Math.ceil(ms / 1000));
    const days = Math.floor(seconds / 86400);
    seconds %= 86400;
    const hours = Math.floor(seconds / 3600);
    seconds %= 3600;
    const minutes = Math.floor(seconds / 60);
    seconds %= 60;
    if (days > 0) {
      const dayText = dayFormat ? dayFormat.format(days) : `${days}d`;
      return `${dayText} ${pad(hours)}:${pad(minutes)}:${pad(seconds)}`;
    }
    if (hours > 0) {
      return `${hours}:${pad(minutes)}:${pad(seconds)}`;
    }
    return `${minutes}:${pad(seconds)}`;
  }

  // The ticking text is for eyes only; its sibling says it to screen readers.
  function spokenSibling(element) {
    if (!element.sessionkitSpoken) {
      element.setAttribute("aria-hidden", "true");
      const spoken = document.createElement("span");
      spoken.className = "sessionkit-visually-hidden";
      spoken.dataset.sessionkitCountdownText = "";
      element.after(spoken);
      element.sessionkitSpoken = spoken;
    }
    return element.sessionkitSpoken;
  }

  function setText(element, text) {
    if (element.textContent !== text) {
      element.textContent = text;
    }
  }

  function updateCountdowns(now) {
    const deadlines = { idle: idleDeadline(), absolute: session.absolute };
    for (const element of document.querySelectorAll("[data-sessionkit-countdown]")) {
      const deadline = deadlines[element.dataset.sessionkitCountdown];
      if (deadline === undefined) {
        continue;
      }
      const spoken = spokenSibling(element);
      if (!root.contains(element)) {
        element.hidden = countdownsHidden;
        spoken.hidden = countdownsHidden;
      }
      if (deadline === null) {
        setText(element, "\u2013");
        setText(spoken, "\u2013");
        element.removeAttribute("datetime");
      } else {
        setText(element, formatRemaining(deadline - now));
        setText(spoken, spokenRemaining(deadline - now));
        if (element.localName === "time") {
          element.setAttribute("datetime", isoDuration(deadline - now));
        }
      }
      const title =
        deadline === null ? "" : new Date(deadline - skew).toLocaleString(locale);
      if (element.title !== title) {
        element.title = title;
      }
    }
  }

  // Buttons that hide and show the page's countdowns (not the warning's own).
  const toggles = Array.from(document.querySelectorAll("[data-sessionkit-countdown-toggle]"));
  let countdownsHidden = false;

  function readCountdownsHidden() {
    try {
      return localStorage.getItem(HIDE_KEY) === "hidden";
    } catch (error) {
      return false;
    }
  }

  function showToggles() {
    for (const toggle of toggles) {
      const label = countdownsHidden ? data.showCountdown : data.hideCountdown;
      if (label) {
        toggle.textContent = label;
        toggle.hidden = false;
      }
    }
  }

  function toggleCountdowns() {
    countdownsHidden = !countdownsHidden;
    try {
      if (countdownsHidden) {
        localStorage.setItem(HIDE_KEY, "hidden");
      } else {
        localStorage.removeItem(HIDE_KEY);
      }
    } catch (error) {
      // Storage disabled: the choice lasts for this page.
    }
    showToggles();
    updateCountdowns(serverNow());
  }

  countdownsHidden = readCountdownsHidden();
  for (const toggle of toggles) {
    toggle.addEventListener("click", toggleCountdowns);
  }
  showToggles();

  // -- Announcements -----------------------------------------------------------

  let announceTimer = null;

  // A polite live region: cleared first, so the same words are said again.
  function announce(text) {
    if (!announcer || !text) {
      return;
    }
    window.clearTimeout(announceTimer);
    announcer.textContent = "";
    announceTimer = window.setTimeout(() => {
      announcer.textContent = text;
    }, 100);
  }

  // The text of an element as a screen reader reads it.
  function spokenText(element) {
    let text = "";
    for (const node of element.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) {
        text += node.textContent;
      } else if (
        node.nodeType === Node.ELEMENT_NODE &&
        !node.hidden &&
        node.getAttribute("aria-hidden") !== "true"
      ) {
        text += spokenText(node);
      }
    }
    return text.replace(/\s+/g, " ").trim();
  }

  function cardText() {
    const parts = [titleElement, messageElement]
      .filter(Boolean)
      .map(spokenText)
      .filter(Boolean);
    if (parts.length > 1 && !/\p{P}$/u.test(parts[0])) {
      parts[0] += ".";
    }
    return parts.join(" ");
  }

  let lastLeft = null;

  function announceThresholds(left) {
    let crossed = null;
    if (lastLeft !== null) {
      for (const seconds of THRESHOLDS) {
        if (lastLeft > seconds * 1000 && left <= seconds * 1000) {
          crossed = seconds;
        }
      }
    }
    lastLeft = left;
    if (crossed !== null && data.announceTime) {
      announce(data.announceTime.replace("{time}", spokenRemaining(crossed * 1000)));
    }
  }

  // -- The warning -------------------------------------------------------------

  let shown = null; // null (hidden), "warning", "final" or "ended"
  let dismissed = null; // the state closed with Escape, until the next one
  let returnFocus = null;

  function visible(element) {
    return !element.closest("[hidden]");
  }

  function typingIn(element) {
    if (!element || element === document.body || root.contains(element)) {
      return false;
    }
    if (element.isContentEditable || element.localName === "textarea") {
      return true;
    }
    return element.localName === "input" && TEXT_INPUT.test(element.type);
  }

  function overlaps(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }

  // Keep the card off the element in focus (WCAG 2.4.11): in its corner at
  // the bottom, or at the top when it would cover that element there.
  function place() {
    if (shown === null) {
      return;
    }
    const focused = document.activeElement;
    if (root.contains(focused)) {
      return; // where it is: a card must not jump away from the pointer
    }
    root.classList.remove("sessionkit-idle-warning--top");
    if (!focused || focused === document.body) {
      return;
    }
    const target = focused.getBoundingClientRect();
    if (overlaps(root.getBoundingClientRect(), target)) {
      root.classList.add("sessionkit-idle-warning--top");
    }
  }

  function setError(on) {
    if (errorElement) {
      errorElement.hidden = !on;
    }
  }

  function render(state) {
    if (state === shown) {
      return;
    }
    const wasHidden = shown === null;
    const active = document.activeElement;
    const focusWasInside = root.contains(active);
    shown = state;
    for (const element of whenElements) {
      const states = element.dataset.sessionkitWhen.split(/\s+/);
      element.hidden = state === null || !states.includes(state);
    }
    setError(false);
    if (state === null) {
      root.hidden = true;
      if (focusWasInside && returnFocus && document.contains(returnFocus)) {
        returnFocus.focus();
      }
      returnFocus = null;
      return;
    }
    root.hidden = false;
    if (wasHidden) {
      returnFocus = active;
    }
    if (focusWasInside) {
      if (!visible(active)) {
        root.focus(); // its button went away ("Stay signed in" in the final state)
      }
    } else if (typingIn(active)) {
      // Never take the focus from a field being typed in: say why instead.
      announce(`${cardText()} ${data.announceTyping || ""}`.trim());
    } else {
      // The card itself, never a button: a key pressed next changes nothing.
      root.focus({ preventScroll: true });
    }
    place();
  }

  function close() {
    dismissed = shown;
    render(null);
  }

  // -- Other tabs --------------------------------------------------------------

  let channel = null;
  try {
    if (typeof BroadcastChannel === "function") {
      channel = new BroadcastChannel(CHANNEL);
    }
  } catch (error) {
    channel = null;
  }

  function post(message) {
    if (channel) {
      channel.postMessage(message);
      return;
    }
    try {
      // Other tabs see the change as a "storage" event; nothing is kept.
      const nonce = Math.random().toString(36).slice(2);
      localStorage.setItem(CHANNEL, JSON.stringify({ ...message, nonce }));
      localStorage.removeItem(CHANNEL);
    } catch (error) {
      // Storage disabled: each tab checks the server on its own.
    }
  }

  function postDeadlines() {
    post({
      type: "deadlines",
      idle: session.idle,
      absolute: session.absolute,
      at: session.at,
      token: csrfToken,
    });
  }

  // Take news newer (by server time) than what this tab knows; a keep-alive
  // answer is the newest there is.
  function adopt(update, { force = false, broadcast = false } = {}) {
    if (update.at === null) {
      return false;
    }
    if (!force && session.at !== null && update.at < session.at) {
      return false;
    }
    const changed =
      update.idle !== session.idle ||
      update.absolute !== session.absolute ||
      update.at !== session.at;
    session.idle = update.idle;
    session.absolute = update.absolute;
    session.at = update.at;
    if (update.token) {
      csrfToken = update.token;
    }
    if (broadcast && changed) {
      postDeadlines();
    }
    tick();
    return true;
  }

  function receive(message) {
    if (!message || typeof message !== "object" || ended) {
      return;
    }
    if (message.type === "deadlines") {
      const update = {
        idle: parseTime(message.idle),
        absolute: parseTime(message.absolute),
        at: parseTime(message.at),
        token: typeof message.token === "string" ? message.token : "",
      };
      const newer = update.at !== null && (session.at === null || update.at > session.at);
      if (newer) {
        adopt(update);
      } else if (update.at !== null && session.at !== null && update.at < session.at) {
        postDeadlines(); // the sender is behind: tell it
      }
    } else if (message.type === "ended") {
      // Another tab was told the session is over: ask the server too.
      nextCheck = 0;
      check();
    }
  }

  if (channel) {
    channel.addEventListener("message", (event) => receive(event.data));
  }
  window.addEventListener("storage", (event) => {
    if (event.key !== CHANNEL || !event.newValue) {
      return;
    }
    try {
      receive(JSON.parse(event.newValue));
    } catch (error) {
      // Not ours.
    }
  });

  // -- The server --------------------------------------------------------------

  async function call(method, url) {
    const headers = { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" };
    if (method === "POST") {
      headers[data.csrfHeader || "X-CSRFToken"] = csrfToken;
    }
    const sent = Date.now();
    const response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual",
    });
    const received = Date.now();
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    return {
      status: response.status,
      // A redirect (to a sign-in page, say) means the session is gone too.
      signedOut: response.status === 401 || response.type === "opaqueredirect",
      body,
      sent,
      received,
    };
  }

  function deadlinesOf(answer) {
    const at = parseTime(answer.body.now);
    if (at !== null) {
      skew = at - (answer.sent + answer.received) / 2;
    }
    return {
      idle: parseTime(answer.body.idle_deadline),
      absolute: parseTime(answer.body.absolute_deadline),
      at,
      token: "",
    };
  }

  function ok(answer) {
    return answer.status === 200 && answer.body && typeof answer.body === "object";
  }

  let ended = false;

  function end({ tell = true } = {}) {
    if (ended) {
      return;
    }
    ended = true;
    render("ended");
    if (tell) {
      post({ type: "ended" });
    }
    window.location.assign(data.loginUrl);
  }

  // The deadline the server last confirmed; the warning shows only for it.
  let verified = null;
  let checking = false;
  let nextCheck = 0;

  async function check() {
    if (checking || ended || Date.now() < nextCheck) {
      return;
    }
    checking = true;
    try {
      const answer = await call("GET", data.statusUrl);
      if (answer.signedOut) {
        end();
        return;
      }
      if (!ok(answer)) {
        throw new Error(`status answered ${answer.status}`);
      }
      adopt(deadlinesOf(answer), { broadcast: true });
      verified = idleDeadline();
      nextCheck = Date.now() + RECHECK_MS;
    } catch (error) {
      nextCheck = Date.now() + RETRY_MS;
      const deadline = idleDeadline();
      if (deadline !== null && deadline <= serverNow()) {
        setError(true);
      }
    } finally {
      checking = false;
    }
    tick();
  }

  let keepingAlive = false;

  async function keepAlive() {
    if (keepingAlive || ended) {
      return;
    }
    keepingAlive = true;
    setError(false);
    try {
      const answer = await call("POST", data.keepAliveUrl);
      if (answer.signedOut) {
        end();
        return;
      }
      if (answer.status === 403) {
        // The CSRF token is stale (a sign-in elsewhere rotated it): a page
        // load is activity too, and brings a fresh token.
        window.location.reload();
        return;
      }
      if (!ok(answer)) {
        throw new Error(`keep-alive answered ${answer.status}`);
      }
      verified = null;
      adopt(deadlinesOf(answer), { force: true, broadcast: true });
      verified = idleDeadline();
      tick();
    } catch (error) {
      setError(true);
    } finally {
      keepingAlive = false;
    }
  }

  // -- The clock ---------------------------------------------------------------

  function tick() {
    if (ended) {
      return;
    }
    const now = serverNow();
    updateCountdowns(now);
    const deadline = idleDeadline();
    if (deadline === null) {
      render(null);
      return;
    }
    const left = deadline - now;
    if (left <= 0) {
      check(); // the server decides: a 401 sends the browser to sign in
      return;
    }
    announceThresholds(left);
    if (left <= warnBefore) {
      if (verified !== deadline) {
        check(); // activity in another tab may have moved the deadline
        return;
      }
      const state = isFinal() ? "final" : "warning";
      render(state === dismissed ? null : state);
      return;
    }
    dismissed = null;
    render(null);
  }

  if (stayButton) {
    stayButton.addEventListener("click", keepAlive);
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented && shown && shown !== "ended") {
      close();
    }
  });
  document.addEventListener("focusin", place);
  window.addEventListener("resize", place);
  window.addEventListener("scroll", place, { passive: true, capture: true });
  window.addEventListener("storage", (event) => {
    if (event.key === HIDE_KEY) {
      countdownsHidden = readCountdownsHidden();
      showToggles();
      updateCountdowns(serverNow());
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      tick();
    }
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      // Restored from the back/forward cache: what it knows may be old.
      nextCheck = 0;
      check();
    }
  });

  postDeadlines();
  tick();
  if (pageFromCache()) {
    check();
  }
  window.setInterval(tick, TICK_MS);
})();

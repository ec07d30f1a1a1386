// Site-wide behaviour: the mobile menu and copy buttons. Pages work without it.
(function () {
  "use strict";

  function setupNav() {
    var toggle = document.querySelector(".nav-toggle");
    var nav = document.getElementById("site-nav");
    if (!toggle || !nav) return;
    // The menu is collapsible only when this script runs; without it the
    // links simply wrap, so nobody is locked out of navigation.
    document.documentElement.classList.add("has-nav-toggle");
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", String(!open));
      nav.classList.toggle("is-open", !open);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && nav.classList.contains("is-open")) {
        toggle.setAttribute("aria-expanded", "false");
        nav.classList.remove("is-open");
        toggle.focus();
      }
    });
  }

  function fallbackCopy(text) {
    // navigator.clipboard exists only in secure contexts (HTTPS or localhost).
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function announce(button, message) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = message;
    window.clearTimeout(button._copyTimer);
    button._copyTimer = window.setTimeout(function () { button.textContent = label; }, 2000);
    var live = document.getElementById("live-status");
    if (live) live.textContent = message === "Copied" ? "Copied to the clipboard" : "Copy failed; select the text and press Ctrl+C";
  }

  function setupCopy() {
    document.addEventListener("click", function (event) {
      var button = event.target.closest("[data-copy]");
      if (!button) return;
      var text = button.getAttribute("data-copy");
      var source = button.getAttribute("data-copy-from");
      if (source) {
        var el = document.getElementById(source);
        if (el) text = "value" in el ? el.value : el.textContent;
      }
      copyText(text).then(
        function () { announce(button, "Copied"); },
        function () { announce(button, "Press Ctrl+C"); }
      );
    });
  }

  function setupSelectOnFocus() {
    // One click selects a whole secret or hash, so a manual copy can't miss characters.
    document.addEventListener("focusin", function (event) {
      if (event.target.matches && event.target.matches("input[data-select-on-focus]")) event.target.select();
    });
  }

  // The header's unread badge: asked of the API after the page, so rendering a
  // page costs no query for it. No badge when the count cannot be had.
  function setupUnreadBadge() {
    var link = document.querySelector("a[data-unread-url]");
    if (!link || !window.fetch) return;
    fetch(link.getAttribute("data-unread-url"), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body || !(body.unread > 0)) return;
        var badge = document.createElement("span");
        badge.className = "badge badge-accent";
        badge.setAttribute("data-testid", "unread-badge");
        badge.textContent = body.capped || body.unread > 99 ? "99+" : String(body.unread);
        var hidden = document.createElement("span");
        hidden.className = "visually-hidden";
        hidden.textContent = " unread";
        badge.appendChild(hidden);
        link.appendChild(document.createTextNode(" "));
        link.appendChild(badge);
      })
      .catch(function () {});
  }

  setupNav();
  setupCopy();
  setupSelectOnFocus();
  setupUnreadBadge();
})();

// jobq dashboard: live-update control. No inline script anywhere (CSP script-src 'self').
// Live fragments carry data-live and poll with htmx; this file pauses them when the operator
// asks, when the tab is hidden, or when a swap would destroy what they are working with
// (ticked rows, a text selection, a focused field, a traceback they opened).
(function () {
  "use strict";
  var KEY = "jobq-live";

  function liveOn() {
    try { return localStorage.getItem(KEY) !== "off"; } catch (e) { return true; }
  }

  function render() {
    var b = document.getElementById("live-toggle");
    if (!b) { return; }
    var on = liveOn();
    b.textContent = on ? "Live: on" : "Live: paused";
    b.setAttribute("aria-pressed", on ? "true" : "false");
    document.body.classList.toggle("live-paused", !on);
  }

  function busy(elt) {
    if (elt.querySelector("input[type=checkbox]:checked")) { return true; }
    var a = document.activeElement;
    if (a && a !== document.body && elt.contains(a) && a.matches("input, select, textarea")) {
      return true;
    }
    var sel = window.getSelection ? window.getSelection() : null;
    if (sel && !sel.isCollapsed && sel.anchorNode && elt.contains(sel.anchorNode)) { return true; }
    return !!elt.querySelector("details[data-touched]");
  }

  function stale(on) {
    var s = document.getElementById("stale");
    if (s) { s.hidden = !on; }
  }

  document.documentElement.classList.add("js");

  document.addEventListener("DOMContentLoaded", function () {
    render();
    var b = document.getElementById("live-toggle");
    if (b) {
      b.addEventListener("click", function () {
        try { localStorage.setItem(KEY, liveOn() ? "off" : "on"); } catch (e) { /* private mode */ }
        render();
      });
    }
  });

  document.addEventListener("toggle", function (e) {
    if (e.target && e.target.tagName === "DETAILS") { e.target.setAttribute("data-touched", ""); }
  }, true);

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || !elt.hasAttribute("data-live")) { return; }
    if (!liveOn() || document.hidden || busy(elt)) { evt.preventDefault(); }
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    if (elt && elt.hasAttribute("data-live")) { stale(!evt.detail.successful); }
  });

  document.addEventListener("htmx:sendError", function () { stale(true); });

  document.addEventListener("htmx:responseError", function (evt) {
    var elt = evt.detail.elt;
    if (elt && elt.id === "op-progress") { elt.classList.add("errored"); }
    stale(true);
  });
})();

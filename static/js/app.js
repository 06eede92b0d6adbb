// Small page-wide behaviours. No inline scripts anywhere: the CSP forbids them.
(function () {
  "use strict";

  function flash(text) {
    var area = document.getElementById("flash");
    if (!area) return;
    var p = document.createElement("p");
    p.className = "flash flash-error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    area.replaceChildren(p);
  }

  // htmx drops non-2xx bodies it is not told to swap; say something instead of nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status === 404) flash("That item no longer exists or is not visible to you.");
    else if (status === 403) flash("You are not allowed to do that.");
    else if (status === 429) flash("Too many requests; wait a moment and try again.");
    else flash("Something went wrong (" + status + "). Nothing was changed.");
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The server could not be reached. Nothing was changed.");
  });

  // "Cancel" on an inline dialog closes it without a round trip.
  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-close-dialog]");
    if (!close) return;
    var dialog = document.getElementById("dialog");
    if (!dialog) return;
    event.preventDefault();
    if (dialog.open) dialog.close(); // board.js empties it on close and refocuses the card
    else dialog.replaceChildren();
  });

  // One button folds a panel away on small screens (the navigation, the filters).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-toggle]");
    if (!button) return;
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    var panel = document.getElementById(button.getAttribute("data-toggle"));
    if (panel) panel.classList.toggle("is-open", open);
  });

  // Filter bars apply on change: the form is a GET, so its state lives in the URL.
  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (!form || !form.hasAttribute("data-autosubmit")) return;
    if (event.target.type === "date" && event.target.value && !event.target.checkValidity()) return;
    form.requestSubmit();
  });

  // Undo offers disappear after their window.
  function expire(root) {
    root.querySelectorAll("[data-expires]").forEach(function (el) {
      var seconds = parseInt(el.getAttribute("data-expires"), 10) || 10;
      window.setTimeout(function () { el.remove(); }, seconds * 1000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    expire(document);
    if (window.htmx) window.htmx.onLoad(expire);
  });
})();

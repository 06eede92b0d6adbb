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
    if (dialog) {
      event.preventDefault();
      dialog.replaceChildren();
    }
  });

  // Undo offers disappear after their window.
  function expire(root) {
    root.querySelectorAll("[data-expires]").forEach(function (el) {
      var seconds = parseInt(el.getAttribute("data-expires"), 10) || 10;
      window.setTimeout(function () { el.remove(); }, seconds * 1000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    expire(document);
    if (window.htmx) window.htmx.onLoad(expire);
  });
})();

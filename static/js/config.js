// Configuration screens (/settings/): drag-to-reorder for pipelines and stages.
//
// Every list also works without this file: each row has Move up / Move down buttons.
// A drag only rewrites the hidden order form of its list (one `order` input per row, in
// the order the rows now stand) and submits it; htmx swaps the re-rendered list in.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function submitOrder(list) {
    var form = document.getElementById(list.dataset.orderForm);
    if (!form) return;
    form.querySelectorAll('input[name="order"]').forEach(function (input) {
      input.remove();
    });
    list.querySelectorAll(":scope > [data-id]").forEach(function (row) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "order";
      input.value = row.dataset.id;
      form.appendChild(input);
    });
    form.requestSubmit();
  }

  function makeSortable(root) {
    if (typeof window.Sortable === "undefined") return; // buttons still work
    root.querySelectorAll("[data-sortable]").forEach(function (list) {
      if (list.dataset.sortableReady) return;
      list.dataset.sortableReady = "1";
      window.Sortable.create(list, {
        handle: "[data-drag-handle]",
        draggable: "[data-id]",
        animation: 150,
        ghostClass: "is-ghost",
        onEnd: function (event) {
          if (event.oldIndex !== event.newIndex) submitOrder(list);
        },
      });
    });
  }

  // After a Move up/down re-render, htmx refocuses the pressed button by its id; when
  // that button is now disabled (the row reached an end), focus its twin instead so
  // keyboard users are not dropped back at the top of the page.
  var lastFocusedId = null;
  document.addEventListener("htmx:beforeRequest", function () {
    var active = document.activeElement;
    lastFocusedId = active && active.id ? active.id : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!lastFocusedId || document.activeElement !== document.body) return;
    var twin = lastFocusedId.replace(/-(up|down)$/, function (_, dir) {
      return dir === "up" ? "-down" : "-up";
    });
    [lastFocusedId, twin].some(function (id) {
      var el = document.getElementById(id);
      if (el && !el.disabled) {
        el.focus();
        return true;
      }
      return false;
    });
    lastFocusedId = null;
  });

  if (window.htmx) {
    window.htmx.onLoad(makeSortable); // the first page load and every swapped-in list
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      makeSortable(document);
    });
  }
})();

// The board's drag and drop. Every drop submits the card's own "Move to stage" form,
// so dragging and the keyboard menu take exactly the same server path.
(function () {
  "use strict";

  function cardId(el) {
    return el && el.classList && el.classList.contains("card") ? el.dataset.deal : "";
  }

  function markBlocked(card) {
    var url = card.dataset.gateUrl;
    if (!url) return;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : { blocked: {} }; })
      .then(function (data) {
        document.querySelectorAll(".cards[data-stage]").forEach(function (list) {
          var reasons = data.blocked[list.dataset.stage];
          var column = list.closest(".column") || list;
          column.classList.toggle("is-blocked", !!reasons);
          if (reasons) column.setAttribute("title", "Missing: " + reasons.join("; "));
          else column.removeAttribute("title");
        });
      })
      .catch(function () { /* hints are a courtesy; the server decides on drop */ });
  }

  function clearMarks() {
    document.querySelectorAll(".is-blocked").forEach(function (el) {
      el.classList.remove("is-blocked");
      el.removeAttribute("title");
    });
    document.body.classList.remove("is-dragging");
  }

  // The drop adds what the menu does not send: where the card landed, and that it was a drag.
  function setField(form, name, value) {
    var input = form.elements[name];
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = value;
  }

  function onEnd(event) {
    clearMarks();
    var card = event.item;
    var form = card.querySelector("form.move-form");
    if (!form || (event.from === event.to && event.oldIndex === event.newIndex)) return;
    form.elements.stage.value = event.to.dataset.stage;
    setField(form, "source", "board");
    setField(form, "after", cardId(card.previousElementSibling));
    setField(form, "before", cardId(card.nextElementSibling));
    form.requestSubmit();
  }

  function init(root) {
    if (!window.Sortable) return;
    root.querySelectorAll(".cards[data-stage]").forEach(function (list) {
      if (list.dataset.sortable) return;
      list.dataset.sortable = "1";
      window.Sortable.create(list, {
        group: "board",
        draggable: ".card:not([data-locked])",
        handle: ".handle",
        filter: ".load-more, .dropzone-label",
        animation: 120,
        delayOnTouchOnly: true,
        delay: 150,
        onStart: function (event) {
          document.body.classList.add("is-dragging");
          markBlocked(event.item);
        },
        onEnd: onEnd,
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    if (window.htmx) window.htmx.onLoad(init);
  });
})();

// The board: drag and drop, the page's one "Move to stage" menu and one snooze dialog.
// Cards carry no forms; a drop and the menu both fill in and post the same move form
// (#move-form), so dragging and the keyboard take exactly the same server path.
(function () {
  "use strict";

  var board, moveDialog, moveForm, snoozeDialog, snoozeForm, gateDialog;
  var current = null; // the card whose menu or snooze dialog is open
  var opener = null; // the button that opened it

  function isCard(el) {
    return !!(el && el.classList && el.classList.contains("card"));
  }

  function cardId(el) {
    return isCard(el) ? el.id.slice("deal-".length) : "";
  }

  // deals/<pk>/ : the card's page, under which its move, gate, next and snooze URLs live.
  function dealUrl(card) {
    return card.querySelector(".card-title").getAttribute("href");
  }

  function cardById(id) {
    return document.getElementById("deal-" + id);
  }

  // The board's filters travel with every move, so the answer keeps to them.
  function withQuery(url) {
    var query = board.dataset.query;
    return query ? url + "?" + query : url;
  }

  function setFields(form, values) {
    Object.keys(values).forEach(function (name) {
      form.elements[name].value = values[name];
    });
  }

  // One path for every move: fill in the shared form and post it. The server answers with
  // the card (and the columns' totals) out of band, or, on a refusal, the columns in full.
  function postMove(card, stage, values) {
    setFields(moveForm, values);
    moveForm.elements.version.value = card.dataset.version;
    moveForm.elements.stage.value = stage;
    var url = withQuery(dealUrl(card) + "move/");
    return window.htmx.ajax("POST", url, { source: moveForm, swap: "none" });
  }

  // --- the "Move to stage" menu ------------------------------------------------------

  function openDialog(dialog, card, button) {
    current = card;
    opener = button;
    dialog.querySelector(".dialog-deal").textContent = card.querySelector(".card-title").textContent;
    dialog.showModal();
  }

  function columnOf(card) {
    var list = card.closest(".cards[data-stage]");
    return list ? list.dataset.stage : "";
  }

  function openMenu(card, button) {
    moveForm.elements.stage.value = columnOf(card);
    openDialog(moveDialog, card, button);
  }

  // --- a refused move's form ---------------------------------------------------------------
  // The answer swaps it into #dialog (a <dialog>); it opens as a modal, so it shows wherever
  // the user is on the board and takes the focus. Closing it (Cancel, Escape) empties it
  // and hands the focus back to the card.

  var gateCard = null;

  function openGate() {
    gateDialog = document.getElementById("dialog");
    if (!gateDialog || gateDialog.open || !gateDialog.firstElementChild) return;
    gateDialog.addEventListener("close", onGateClose);
    gateDialog.showModal();
    var field = gateDialog.querySelector("input:not([type=hidden]), select, textarea, button");
    if (field) field.focus();
  }

  function onGateClose() {
    this.replaceChildren();
    var card = gateCard && cardById(gateCard);
    var back = card && (card.querySelector(".move-open") || card.querySelector(".card-title"));
    if (back) back.focus();
  }

  // After a menu move: back to the card (now in its new column), else to what the answer
  // offers next (the gate form's first field, the undo button), else the board.
  function refocus(id) {
    openGate();
    var card = cardById(id);
    var target =
      document.querySelector("#dialog input:not([type=hidden]), #dialog select, #dialog textarea") ||
      (card && card.querySelector(".move-open")) ||
      document.querySelector("#flash button") ||
      board.querySelector(".column h2");
    if (!target) return;
    if (!target.matches("input, select, textarea, button, a")) target.setAttribute("tabindex", "-1");
    target.focus();
  }

  function onMenuSubmit(event) {
    event.preventDefault();
    var card = current;
    var stage = moveForm.elements.stage.value;
    moveDialog.close();
    if (!card) return;
    var id = cardId(card);
    var done = function () { refocus(id); };
    gateCard = id;
    postMove(card, stage, { source: "menu", after: "", before: "", from: columnOf(card) }).then(done, done);
  }

  // --- snoozing a stalled card ----------------------------------------------------------

  function openSnooze(card, button) {
    snoozeForm.reset();
    openDialog(snoozeDialog, card, button);
  }

  function refocusBadge(id) {
    var button = document.querySelector("#stalled-" + id + " button") || document.querySelector("#deal-" + id + " .move-open");
    if (button) button.focus();
  }

  function onSnoozeSubmit(event) {
    event.preventDefault();
    var card = current;
    if (!card || !snoozeForm.reportValidity()) return;
    snoozeDialog.close();
    var id = cardId(card);
    var done = function () { refocusBadge(id); };
    window.htmx.ajax("POST", dealUrl(card) + "snooze/", {
      source: snoozeForm, target: "#stalled-" + id, swap: "outerHTML",
    }).then(done, done);
  }

  function endSnooze(card) {
    var id = cardId(card);
    var done = function () { refocusBadge(id); };
    window.htmx.ajax("POST", dealUrl(card) + "unsnooze/", {
      source: card.querySelector(".unsnooze"),
      target: "#stalled-" + id,
      swap: "outerHTML",
      values: { board: "1", next: snoozeForm.elements.next.value },
    }).then(done, done);
  }

  function onClick(event) {
    var button = event.target.closest("button");
    if (!button) return;
    var card = button.closest(".card");
    if (button.classList.contains("dialog-cancel")) button.closest("dialog").close();
    else if (!card) return;
    else if (button.classList.contains("move-open")) openMenu(card, button);
    else if (button.classList.contains("snooze-open")) openSnooze(card, button);
    else if (button.classList.contains("unsnooze")) endSnooze(card);
  }

  // Closing a dialog (Cancel, Escape, or on submit) hands focus back to the button that
  // opened it; a menu move's answer then moves it on (refocus).
  function onDialogClose() {
    var back = opener;
    current = opener = null;
    var lost = document.activeElement === document.body || this.contains(document.activeElement);
    if (back && back.isConnected && lost) back.focus();
  }

  // --- "What's next?": loaded the first time a card's panel opens -------------------------

  function onToggle(event) {
    var details = event.target;
    if (!details.matches || !details.matches("details.next-stage") || !details.open) return;
    if (details.dataset.loaded) return;
    details.dataset.loaded = "1";
    var body = details.querySelector(".next-body");
    window.htmx.ajax("GET", dealUrl(details.closest(".card")) + "next/", { source: body, target: body, swap: "innerHTML" });
  }

  // --- "Load more": the offset is the number of cards the column shows now ---------------
  // Moves add and remove cards without re-rendering the column, so the offset the link was
  // rendered with may be stale.

  function onConfigRequest(event) {
    var link = event.detail.elt;
    if (!link.closest || !link.closest(".load-more")) return;
    var list = link.closest(".cards");
    var count = list.querySelectorAll(".card").length;
    event.detail.path = event.detail.path.replace(/([?&]offset=)\d*/, "$1" + count);
  }

  // A refused move that htmx would not swap (400/403 by default) still carries the
  // columns as they are: swap them so a dragged card snaps back. Anything else (404, 429,
  // 5xx) has no columns: reload the board so no card stays where it was dropped.
  function onBeforeSwap(event) {
    if (event.detail.requestConfig.elt !== moveForm) return;
    var status = event.detail.xhr.status;
    if (status === 400 || status === 403) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  }

  function onResponseError(event) {
    if (event.detail.requestConfig.elt !== moveForm) return;
    var status = event.detail.xhr.status;
    if (status !== 400 && status !== 403) window.setTimeout(function () { window.location.reload(); }, 1500);
  }

  // --- drag and drop ----------------------------------------------------------------------

  function markBlocked(card) {
    fetch(dealUrl(card) + "gate/", { headers: { Accept: "application/json" }, credentials: "same-origin" })
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

  // After a drop the answer's news goes where the pointer was: the gate form opens as a
  // modal, and the focus goes to it or to the undo offer (a toast over the board).
  function afterDrop() {
    openGate();
    if (gateDialog && gateDialog.open) return;
    var undo = document.querySelector("#flash .undo button");
    if (undo) undo.focus();
  }

  // The drop adds what the menu does not send: where the card landed, and that it was a drag.
  function onEnd(event) {
    clearMarks();
    var card = event.item;
    if (!isCard(card) || card.dataset.locked) return;
    if (event.from === event.to && event.oldIndex === event.newIndex) return;
    gateCard = cardId(card);
    postMove(card, event.to.dataset.stage, {
      source: "board",
      after: cardId(card.previousElementSibling),
      before: cardId(card.nextElementSibling),
      from: event.from.dataset.stage,
    }).then(afterDrop, afterDrop);
  }

  function initSortable(root) {
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
        // A long press picks a card up on a touch screen, so a swipe still scrolls the board.
        delayOnTouchOnly: true,
        delay: 150,
        // Sortable's own drag, not the browser's: the same for mouse and touch, and its
        // auto-scroll only follows that one (a touch screen whose browser also supports
        // native drag would otherwise never scroll). The dragged copy lives on <body>,
        // above every column; near an edge of the board or of a column, that one scrolls,
        // so a card can reach any column on a phone.
        forceFallback: true,
        fallbackOnBody: true,
        scroll: true,
        bubbleScroll: true,
        scrollSensitivity: 56,
        scrollSpeed: 14,
        onStart: function (event) {
          document.body.classList.add("is-dragging");
          markBlocked(event.item);
        },
        onEnd: onEnd,
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    board = document.getElementById("board");
    moveDialog = document.getElementById("move-menu");
    snoozeDialog = document.getElementById("snooze-dialog");
    if (!board || !moveDialog || !window.htmx) return;
    moveForm = moveDialog.querySelector("form");
    snoozeForm = snoozeDialog.querySelector("form");
    moveForm.addEventListener("submit", onMenuSubmit);
    snoozeForm.addEventListener("submit", onSnoozeSubmit);
    moveDialog.addEventListener("close", onDialogClose);
    snoozeDialog.addEventListener("close", onDialogClose);
    document.addEventListener("click", onClick);
    document.addEventListener("toggle", onToggle, true);
    document.body.addEventListener("htmx:configRequest", onConfigRequest);
    document.body.addEventListener("htmx:beforeSwap", onBeforeSwap);
    document.body.addEventListener("htmx:responseError", onResponseError);
    document.body.addEventListener("htmx:oobAfterSwap", function (event) {
      if (event.detail.target && event.detail.target.id === "dialog") window.setTimeout(openGate);
    });
    initSortable(document);
    window.htmx.onLoad(initSortable);
    // The card buttons need this script; without it they stay hidden (app.css) and a card's
    // title leads to the deal page, whose stage path moves the deal.
    board.classList.add("is-live");
  });
})();

// The board: drag and drop, keyboard moves between cards, and the page's one card menu,
// "Move to stage" dialog, snooze dialog and next-step dialog. Cards carry no forms; a drop
// and the menu both fill in and post the same move form (#move-form), so dragging and the
// keyboard take exactly the same server path.
(function () {
  "use strict";

  var board, moveDialog, moveForm, snoozeDialog, snoozeForm, gateDialog, cardMenu, nextDialog;
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
  // the card (and the columns' totals) out of band; on a stale version (409) with the card
  // as it is now and where it goes; on another refusal with the columns in full.
  // Each attempt carries a fresh idempotency key; a 503 is retried once with the same key,
  // and the server answers a move that had committed with that move, not a conflict.
  function postMove(card, stage, values) {
    setFields(moveForm, values);
    moveForm.elements.version.value = card.dataset.version;
    moveForm.elements.stage.value = stage;
    moveForm.elements.key.value = newKey();
    lastMove = { url: withQuery(dealUrl(card) + "move/"), retried: false };
    return window.htmx.ajax("POST", lastMove.url, { source: moveForm, swap: "none" });
  }

  var lastMove = null;

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function retryMove() {
    lastMove.retried = true;
    window.htmx.ajax("POST", lastMove.url, { source: moveForm, swap: "none" });
  }

  // --- the "Move to stage" menu ------------------------------------------------------

  function openDialog(dialog, card, button) {
    current = card;
    opener = button;
    dialog.querySelector(".dialog-deal").textContent = card.querySelector(".card-title").textContent;
    dialog.showModal();
    editing(card, dialog.id, true);
  }

  // For live.js: which card's dialog is open ("Ana is editing" on the others' boards).
  function editing(card, dialog, open) {
    var detail = { card: card, dialog: dialog, open: open };
    document.dispatchEvent(new CustomEvent("board:editing", { detail: detail }));
  }

  function columnOf(card) {
    var list = card.closest(".cards[data-stage]");
    return list ? list.dataset.stage : "";
  }

  // The menu starts on the stage after the card's own: the usual move is one step on.
  function openMenu(card, button) {
    var select = moveForm.elements.stage;
    var here = columnOf(card);
    var options = Array.prototype.slice.call(select.options);
    var index = options.findIndex(function (option) { return option.value === here; });
    select.value = options[Math.min(index + 1, options.length - 1)].value;
    openDialog(moveDialog, card, button || card.querySelector(".card-title"));
  }

  function onMoveKey(event) {
    if (event.key === "Enter" && event.target === moveForm.elements.stage) {
      event.preventDefault();
      moveForm.requestSubmit();
    }
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
    var back = card && card.querySelector(".card-title");
    if (back) back.focus();
  }

  // The dialog's answer arrived: open a new form, or, when the form went through and
  // left the focus nowhere, offer the undo.
  function afterForm() {
    openGate();
    if (gateDialog && gateDialog.open) return;
    var undo = document.querySelector("#flash .undo button");
    if (undo && document.activeElement === document.body) undo.focus();
  }

  // After a menu move: back to the card (now in its new column), else to what the answer
  // offers next (the gate form's first field, the undo button), else the board.
  function refocus(id) {
    openGate();
    var card = cardById(id);
    var target =
      document.querySelector("#dialog input:not([type=hidden]), #dialog select, #dialog textarea") ||
      (card && card.querySelector(".card-title")) ||
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
    var mark = document.querySelector("#stalled-" + id + " .stalled-mark") || document.querySelector("#deal-" + id + " .card-title");
    if (mark) mark.focus();
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
      source: card,
      target: "#stalled-" + id,
      swap: "outerHTML",
      values: { board: "1", next: snoozeForm.elements.next.value },
    }).then(done, done);
  }

  // --- the card menu: one per page, next to the card's button ---------------------------

  var menuCard = null;
  var menuButton = null;

  function openCardMenu(card, button) {
    menuCard = card;
    menuButton = button;
    // Snoozing swaps the card's marker only, so the marker says which offer applies.
    var mark = card.querySelector(".stalled-mark");
    var state = !mark ? "" : mark.classList.contains("is-snoozed") ? "snoozed" : "flagged";
    cardMenu.querySelectorAll("[data-when]").forEach(function (item) {
      item.parentElement.hidden = item.dataset.when !== state;
    });
    cardMenu.hidden = false;
    var box = button.getBoundingClientRect();
    var left = Math.min(box.right - cardMenu.offsetWidth, window.innerWidth - cardMenu.offsetWidth - 8);
    var top = box.bottom + 4;
    if (top + cardMenu.offsetHeight > window.innerHeight - 8) top = box.top - cardMenu.offsetHeight - 4;
    cardMenu.style.left = Math.max(8, left) + "px"; // CSSOM, which the CSP allows
    cardMenu.style.top = Math.max(8, top) + "px";
    button.setAttribute("aria-expanded", "true");
    menuItems()[0].focus();
  }

  function closeCardMenu(refocusButton) {
    if (cardMenu.hidden) return;
    cardMenu.hidden = true;
    if (menuButton) {
      menuButton.setAttribute("aria-expanded", "false");
      if (refocusButton) menuButton.focus();
    }
  }

  function menuItems() {
    return Array.prototype.filter.call(cardMenu.querySelectorAll("[role=menuitem]"), function (item) {
      return !item.parentElement.hidden;
    });
  }

  function onMenuKey(event) {
    var items = menuItems();
    var index = items.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : -1;
      items[(index + step + items.length) % items.length].focus();
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      items[event.key === "Home" ? 0 : items.length - 1].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeCardMenu(true);
    } else if (event.key === "Tab") {
      closeCardMenu(false);
    }
  }

  function runAction(action, card, button) {
    if (action === "move") openMenu(card, button);
    else if (action === "next") openNext(card, button);
    else if (action === "snooze") openSnooze(card, button);
    else if (action === "unsnooze") endSnooze(card);
    else if (action === "open") window.location.assign(dealUrl(card));
  }

  // --- "What's next?": the next stage's entry criteria, loaded when asked ------------------

  function openNext(card, button) {
    var body = nextDialog.querySelector(".next-body");
    body.textContent = "Loading…";
    openDialog(nextDialog, card, button);
    window.htmx.ajax("GET", dealUrl(card) + "next/", { source: body, target: body, swap: "innerHTML" });
  }

  function onClick(event) {
    var button = event.target.closest("button");
    if (!cardMenu.hidden && !cardMenu.contains(event.target)) closeCardMenu(false);
    if (!button) return;
    if (button.classList.contains("dialog-cancel")) {
      button.closest("dialog").close();
      return;
    }
    if (button.closest("#card-menu")) {
      // The live board may have replaced the card since the menu opened: find it again.
      var card = menuCard && cardById(cardId(menuCard));
      closeCardMenu(false);
      if (card) runAction(button.dataset.action, card, card.querySelector(".card-menu") || menuButton);
      return;
    }
    if (button.classList.contains("card-menu")) openCardMenu(button.closest(".card"), button);
  }

  // --- keyboard: arrows between cards and columns, M moves, "." opens the card menu -------
  // Each card's title link is its stop: Up/Down within a column, Left/Right to the card at
  // the same height in the next column with cards, 1–9 to a column's first card, Home/End
  // and PageUp/PageDown (five cards) within a column.

  function lists() {
    return Array.prototype.filter.call(board.querySelectorAll(".column .cards"), function (list) {
      return list.querySelector(".card");
    });
  }

  function cardsOf(list) {
    return Array.prototype.slice.call(list.querySelectorAll(":scope > .card"));
  }

  function focusCard(card) {
    if (!card) return;
    var link = card.querySelector(".card-title");
    link.focus();
    card.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function onBoardKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var link = event.target.closest && event.target.closest(".card-title");
    if (!link) return;
    var card = link.closest(".card");
    var list = card.parentElement;
    var cards = cardsOf(list);
    var row = cards.indexOf(card);
    var columns = lists();
    var col = columns.indexOf(list);
    var key = event.key;
    var target = null;
    if (key === "ArrowDown") target = cards[row + 1];
    else if (key === "ArrowUp") target = cards[row - 1];
    else if (key === "PageDown") target = cards[Math.min(row + 5, cards.length - 1)];
    else if (key === "PageUp") target = cards[Math.max(row - 5, 0)];
    else if (key === "Home") target = cards[0];
    else if (key === "End") target = cards[cards.length - 1];
    else if (key === "ArrowRight" || key === "ArrowLeft") {
      var next = columns[col + (key === "ArrowRight" ? 1 : -1)];
      if (next) {
        var there = cardsOf(next);
        target = there[Math.min(row, there.length - 1)];
      }
    } else if (/^[1-9]$/.test(key)) {
      var column = columns[parseInt(key, 10) - 1];
      if (column) target = cardsOf(column)[0];
    } else if ((key === "m" || key === "M") && !card.dataset.locked) {
      event.preventDefault();
      openMenu(card, link);
      return;
    } else if (key === "." && !card.dataset.locked) {
      event.preventDefault();
      openCardMenu(card, card.querySelector(".card-menu"));
      return;
    } else return;
    event.preventDefault();
    focusCard(target || card);
  }

  // "Skip to content" on the board lands on its first card, ready for the arrow keys.
  function onSkip(event) {
    var first = board.querySelector(".card");
    if (!first || !event.target.closest(".skip-link")) return;
    event.preventDefault();
    focusCard(first);
  }

  // Closing a dialog (Cancel, Escape, or on submit) hands focus back to the button that
  // opened it; a menu move's answer then moves it on (refocus).
  function onDialogClose() {
    if (current) editing(current, this.id, false);
    var back = opener;
    current = opener = null;
    var lost = document.activeElement === document.body || this.contains(document.activeElement);
    if (back && back.isConnected && lost) back.focus();
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

  // A stale move (409: a drop, the menu, the gate form, an undo) carries the card as it is
  // now and the card it follows: put it there (live.js), wherever it was dropped; its
  // totals, the reason and the emptied dialog come out of band.
  // A refused move that htmx would not swap (400/403 by default) still carries the
  // columns as they are: swap them so a dragged card snaps back. Anything else (404, 429,
  // 5xx) has no columns: reload the board so no card stays where it was dropped.
  function onBeforeSwap(event) {
    var status = event.detail.xhr.status;
    if (status === 409 && window.liveBoard) window.liveBoard.placeCard(event.detail.xhr.responseText);
    if (event.detail.requestConfig.elt !== moveForm) return;
    if (status === 400 || status === 403) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  }

  function onResponseError(event) {
    if (event.detail.requestConfig.elt !== moveForm) return;
    var status = event.detail.xhr.status;
    if (status === 503 && lastMove && !lastMove.retried) {
      window.setTimeout(retryMove, 1500);
      return;
    }
    if (status !== 400 && status !== 403) window.setTimeout(function () { window.location.reload(); }, 1500);
  }

  // --- a column's inline quick add ---------------------------------------------------------
  // Its "+ Add" link loads the form into the column's .quick-add slot (htmx); the answer to
  // the form (the next blank form, or the same with what is missing) lands there too. The
  // focus goes to the first field to fix, else the first field; Cancel or Escape empties
  // the slot and hands the focus back to the link, which toggles the form.

  function quickLink(slot) {
    return board.querySelector('.new-deal[aria-controls="' + slot.id + '"]');
  }

  function closeQuickAdd(slot) {
    slot.replaceChildren();
    var link = quickLink(slot);
    if (!link) return;
    link.setAttribute("aria-expanded", "false");
    link.focus();
  }

  function onQuickSwap(event) {
    var slot = event.detail.target;
    if (!slot || !slot.classList || !slot.classList.contains("quick-add")) return;
    var link = quickLink(slot);
    if (link) link.setAttribute("aria-expanded", slot.firstElementChild ? "true" : "false");
    var field =
      slot.querySelector(".has-error input:not([type=hidden]), .has-error select") ||
      slot.querySelector("input:not([type=hidden]), select, .quick-choices a");
    if (field) field.focus();
  }

  // A second click on "+ Add" folds the open form away instead of loading it again.
  function onQuickToggle(event) {
    var link = event.detail.elt;
    if (!link.classList || !link.classList.contains("new-deal")) return;
    var slot = document.getElementById(link.getAttribute("aria-controls"));
    if (slot && slot.firstElementChild) {
      event.preventDefault();
      closeQuickAdd(slot);
    }
  }

  function onQuickKey(event) {
    var slot = event.target.closest && event.target.closest(".quick-add");
    if (slot && event.key === "Escape") {
      event.preventDefault();
      closeQuickAdd(slot);
    }
  }

  function onQuickCancel(event) {
    var button = event.target.closest(".quick-cancel");
    if (button) closeQuickAdd(button.closest(".quick-add"));
  }

  function initQuickAdd() {
    board.addEventListener("keydown", onQuickKey);
    board.addEventListener("click", onQuickCancel);
    document.body.addEventListener("htmx:afterSwap", onQuickSwap);
    document.body.addEventListener("htmx:beforeRequest", onQuickToggle);
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
        // The whole card drags, except its link, buttons and checkbox.
        filter: "a, button, input, .load-more, .dropzone-label",
        preventOnFilter: false,
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
    cardMenu = document.getElementById("card-menu");
    nextDialog = document.getElementById("next-dialog");
    moveDialog.addEventListener("close", onDialogClose);
    snoozeDialog.addEventListener("close", onDialogClose);
    nextDialog.addEventListener("close", onDialogClose);
    moveForm.addEventListener("keydown", onMoveKey);
    cardMenu.addEventListener("keydown", onMenuKey);
    board.addEventListener("keydown", onBoardKey);
    document.addEventListener("click", onSkip);
    document.addEventListener("click", onClick);
    document.body.addEventListener("htmx:configRequest", onConfigRequest);
    document.body.addEventListener("htmx:beforeSwap", onBeforeSwap);
    document.body.addEventListener("htmx:responseError", onResponseError);
    document.body.addEventListener("htmx:oobAfterSwap", function (event) {
      if (event.detail.target && event.detail.target.id === "dialog") window.setTimeout(afterForm);
    });
    initQuickAdd();
    initSortable(document);
    window.htmx.onLoad(initSortable);
    // The card buttons need this script; without it they stay hidden (app.css) and a card's
    // title leads to the deal page, whose stage path moves the deal.
    board.classList.add("is-live");
  });
})();

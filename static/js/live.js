// The live board: hears of every change to a deal (ids and a version only, over
// Server-Sent Events) and fetches what changed through the ordinary views, so a page
// shows only what its user may see. On the board: the card moves to its column and place
// (or leaves the board), the columns' totals follow. On a deal page: the page refreshes.
// Someone's open move menu or edit form shows on the others' cards ("Ana Ruiz is
// editing"), and a card the stream says is stale is refreshed before its menu submits.
//
// The connection is htmx's SSE extension (static/vendor/htmx-ext-sse, `sse-connect`): it
// opens and re-opens the stream and raises `sse:<event>` on the element holding it; this
// file decides what each event does to the page. Without the stream (Redis down, proxy
// trouble) the board polls a version per column instead.
(function () {
  "use strict";

  var POLL_MS = 10000;
  var HIGHLIGHT_MS = 4000;
  var HEARTBEAT_MS = 10000;
  var STREAM_URL = "/live/stream/";
  var EVENTS = ["deal", "resync", "degraded"];
  var pollTimer = null;
  var headsTimer = null;

  // Every event name of the rule book's catalogue a card can show, as a verb; one not
  // listed here still updates the card, as "changed".
  var VERBS = {
    "deal.created": "added", "deal.updated": "updated", "deal.moved": "moved",
    "deal.won": "won", "deal.lost": "lost", "deal.reopened": "reopened",
    "deal.reassigned": "reassigned", "deal.snoozed": "snoozed", "deal.unsnoozed": "woken",
    "deal.stalled": "flagged stalled", "deal.unstalled": "no longer stalled",
    "deal.imported": "imported", "deal.deleted": "deleted",
    "activity.created": "given an activity", "activity.updated": "given an activity",
    "activity.completed": "given an activity", "activity.deleted": "given an activity",
  };
  var PRESENCE = "presence";

  // This page's user: their own changes are answered by their own requests (the card, a
  // 409 with the fresh state), which a live refresh must not overtake or undo.
  var script = document.querySelector("script[data-live-user]");
  var me = script ? Number(script.dataset.liveUser) : 0;
  // The newest version the stream announced per deal: a card older than that is stale.
  var announced = {};

  function boardParams(board) {
    var params = new URLSearchParams(board.dataset.query || "");
    if (!params.get("pipeline")) params.set("pipeline", board.dataset.pipeline);
    return params;
  }

  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } });
  }

  function fragment(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html;
    return holder.content;
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  // --- presence: "Ana Ruiz is editing" ---------------------------------------------------

  // This page's own open menu or form: {deal, card, version, timer}.
  var open = null;

  function tell(deal, editing, leaving) {
    var body = new FormData();
    body.set("deal", deal);
    body.set("editing", editing ? "1" : "0");
    body.set("csrfmiddlewaretoken", csrfToken());
    if (leaving && navigator.sendBeacon) {
      navigator.sendBeacon("/live/presence/", body);
      return;
    }
    fetch("/live/presence/", { method: "POST", credentials: "same-origin", body: body })
      .catch(function () { /* presence is a courtesy */ });
  }

  function startEditing(deal, card) {
    deal = String(deal);
    if (open && open.deal === deal) return;
    stopEditing();
    open = { deal: deal, card: card, version: card ? Number(card.dataset.version) : 0 };
    tell(deal, true);
    open.timer = window.setInterval(function () { tell(deal, true); }, HEARTBEAT_MS);
  }

  function stopEditing(leaving) {
    if (!open) return;
    window.clearInterval(open.timer);
    tell(open.deal, false, leaving);
    open = null;
  }

  // Who else has a deal open, as its page or card should say; null when nobody.
  var editors = {};

  function showEditors(deal) {
    var note = editors[deal];
    var holder = document.querySelector("[data-live-deal='" + deal + "'] .deal-header") ||
      document.getElementById("deal-" + deal);
    if (!holder) return;
    holder.querySelectorAll(".live-editing").forEach(function (old) { old.remove(); });
    if (note) holder.appendChild(note.cloneNode(true));
  }

  function onPresence(deal) {
    get("/deals/" + deal + "/editing/").then(function (response) {
      if (!response.ok) { editors[deal] = null; showEditors(deal); return; }
      return response.text().then(function (html) {
        var note = fragment(html).querySelector(".live-editing");
        editors[deal] = note && !note.hidden ? note : null;
        showEditors(deal);
        if (!editors[deal]) return;
        // Nobody announces a closed laptop: ask again once the heartbeat would be late.
        window.clearTimeout(note.expiry);
        var ttl = Number(note.dataset.ttl || 30) * 1000;
        note.expiry = window.setTimeout(function () {
          if (editors[deal] === note) onPresence(deal);
        }, ttl);
      });
    }).catch(function () { /* presence is a courtesy */ });
  }

  // --- the board ---------------------------------------------------------------------

  function refreshHeads(board) {
    return get("/live/heads/?" + boardParams(board)).then(function (response) {
      if (!response.ok) return;
      return response.text().then(function (html) {
        fragment(html).querySelectorAll("[id^='totals-']").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (old) old.replaceWith(fresh);
        });
      });
    });
  }

  // Several events in a burst (a bulk move) need the totals once.
  function scheduleHeads(board) {
    window.clearTimeout(headsTimer);
    headsTimer = window.setTimeout(function () { refreshHeads(board); }, 150);
  }

  function highlight(card, text) {
    card.classList.add("live-changed");
    card.querySelectorAll(".live-note").forEach(function (n) { n.remove(); });
    if (text) {
      var note = document.createElement("p");
      note.className = "live-note";
      note.textContent = text;
      card.appendChild(note);
    }
    window.setTimeout(function () {
      card.classList.remove("live-changed");
      card.querySelectorAll(".live-note").forEach(function (n) { n.remove(); });
    }, HIGHLIGHT_MS);
  }

  // The fresh card's content into the card element already on the page, which keeps its
  // identity: the board's open menu holds that element, and must now post its version.
  function update(old, fresh) {
    Array.prototype.slice.call(old.attributes).forEach(function (attribute) {
      if (!fresh.hasAttribute(attribute.name)) old.removeAttribute(attribute.name);
    });
    Array.prototype.slice.call(fresh.attributes).forEach(function (attribute) {
      old.setAttribute(attribute.name, attribute.value);
    });
    old.replaceChildren.apply(old, Array.prototype.slice.call(fresh.childNodes));
    return old;
  }

  // The card where the board would render it: after the card `after` names, first when
  // it names none; not at all when its place is past what the column has loaded.
  function position(list, card, after) {
    if (!after) { list.insertBefore(card, list.firstElementChild); return true; }
    var anchor = document.getElementById("deal-" + after);
    if (anchor && anchor.parentElement === list) { anchor.after(card); return true; }
    var more = list.querySelector(".load-more");
    if (more) return false; // behind "Load more"
    list.appendChild(card);
    return true;
  }

  function remove(deal) {
    var gone = document.getElementById("deal-" + deal);
    if (gone) gone.remove();
    if (open && open.deal === String(deal)) closeMenu();
  }

  // The menu of a card that left the board has nothing left to move.
  function closeMenu() {
    var dialog = document.getElementById("move-menu");
    if (dialog && dialog.open) dialog.close();
  }

  // A card fragment (`<template data-stage data-after>` holding the card: the live card
  // view's, or a stale move's answer) put where the board renders it. The card element
  // already on the page, wherever it sits (its old column, where it was dropped), is
  // updated and moved, so the board shows it once. The card, or null when this board does
  // not show it there (it then leaves the board).
  function placeCard(wrapper) {
    var fresh = wrapper.content.querySelector(".card");
    var deal = fresh.id.slice("deal-".length);
    var list = document.querySelector("#column-" + wrapper.dataset.stage + " .cards");
    if (!list) { remove(deal); return null; } // a column this board does not show
    var old = document.getElementById(fresh.id);
    var card = old ? update(old, fresh) : fresh;
    if (!position(list, card, wrapper.dataset.after)) { remove(deal); return null; }
    if (window.htmx) window.htmx.process(card);
    return card;
  }

  // For board.js: a stale move's answer (409) places its fresh card the same way.
  window.liveBoard = {
    placeCard: function (html) {
      var wrapper = fragment(html).querySelector("template[data-stage]");
      return wrapper ? placeCard(wrapper) : null;
    },
  };

  function place(data, html) {
    var wrapper = fragment(html).querySelector("template");
    if (!wrapper) return;
    var card = placeCard(wrapper);
    if (!card) return;
    showEditors(data.deal);
    var who = wrapper.dataset.by;
    var text = who ? (VERBS[data.event] || "changed") + " by " + who : "";
    highlight(card, text);
    if (open && open.card === card) warnMenu(text);
  }

  // The card open in this page's menu changed under it: say so in the menu, whose next
  // submit carries the fresh version.
  function warnMenu(text) {
    var form = document.getElementById("move-form");
    if (!form) return;
    var note = form.querySelector(".live-stale");
    if (!note) {
      note = document.createElement("p");
      note.className = "live-stale";
      note.setAttribute("role", "alert");
      form.querySelector(".actions").before(note);
    }
    note.textContent = (text ? text.charAt(0).toUpperCase() + text.slice(1) : "Changed") +
      " just now. Check the stage, then move it again.";
    open.version = Number(open.card.dataset.version);
  }

  function clearWarning() {
    document.querySelectorAll("#move-form .live-stale").forEach(function (n) { n.remove(); });
  }

  function fetchCard(board, data) {
    var params = boardParams(board);
    if (data.by) params.set("by", data.by);
    return get("/deals/" + data.deal + "/card/?" + params).then(function (response) {
      if (response.status === 404) {
        remove(data.deal);
      } else if (response.ok) {
        return response.text().then(function (html) { place(data, html); });
      }
    }).then(function () { scheduleHeads(board); });
  }

  function onBoardEvent(board, data) {
    if (data.by && data.by === me) return;
    if (data.event === PRESENCE) { onPresence(data.deal); return; }
    // Many deals at once (an import): the columns as a reload would show them.
    if (!data.deal) { resyncBoard(); return; }
    announced[data.deal] = Math.max(announced[data.deal] || 0, data.version);
    // A deleted deal has no version (0) and no card to fetch: it leaves the board.
    if (data.event === "deal.deleted") { remove(data.deal); scheduleHeads(board); return; }
    var shown = document.getElementById("deal-" + data.deal);
    // The card already shows this version (our own move, answered) or a later one:
    // nothing to fetch. Activities and stalled flags change a card, not its version.
    var bumpsVersion = /^deal\.(moved|updated|created|won|lost|reopened|reassigned)$/.test(data.event);
    var version = shown ? Number(shown.dataset.version) : -1;
    if (version > data.version || (version === data.version && bumpsVersion)) return;
    fetchCard(board, data);
  }

  // A move menu must not submit a version the stream already said is stale: the card is
  // fetched first and the menu says what changed; the user then moves it again.
  function guardMoveMenu(board) {
    document.addEventListener("submit", function (event) {
      if (event.target.id !== "move-form" || !open || !open.card) return;
      var card = open.card;
      var shown = Number(card.dataset.version);
      if ((announced[open.deal] || 0) <= shown) { clearWarning(); return; }
      event.preventDefault();
      event.stopImmediatePropagation();
      fetchCard(board, { deal: open.deal, version: announced[open.deal], event: "deal.updated" });
    }, true);
  }

  // Missed more than the stream can replay: the columns as a reload would show them.
  function resyncBoard() {
    if (!window.htmx) { window.location.reload(); return; }
    window.htmx.ajax("GET", window.location.pathname + window.location.search,
      { target: "#board", select: "#board", swap: "outerHTML" });
  }

  // The cheap check while there is no stream: a version per column (one grouped query,
  // 304 while nothing changed); when one changes, the columns are fetched again.
  var lastTag = "";

  function poll(board) {
    if (pollTimer) return;
    pollTimer = window.setInterval(function () {
      var headers = { "HX-Request": "true" };
      if (lastTag) headers["If-None-Match"] = lastTag;
      fetch("/live/versions/?" + boardParams(board), { credentials: "same-origin", headers: headers })
        .then(function (response) {
          if (response.status !== 200) return;
          var tag = response.headers.get("ETag") || "";
          if (lastTag && tag !== lastTag) resyncBoard();
          lastTag = tag;
        })
        .catch(function () { /* offline: try again next time */ });
    }, POLL_MS);
  }

  function stopPolling() {
    window.clearInterval(pollTimer);
    pollTimer = null;
  }

  // --- a deal page ---------------------------------------------------------------------

  function dealPage() {
    return document.querySelector("[data-live-deal]"); // replaced by each refresh
  }

  function refreshDeal() {
    var page = dealPage();
    get(window.location.pathname).then(function (response) {
      if (response.ok) {
        return response.text().then(function (html) {
          if (!window.htmx) return;
          window.htmx.swap("#workspace", html, { swapStyle: "outerHTML" }, { select: "#workspace" });
          showEditors(dealPage().dataset.liveDeal);
        });
      }
      // Deleted, or no longer this user's to see: say so instead of showing it stale.
      if (page && (response.status === 404 || response.status === 403)) {
        var note = document.createElement("p");
        note.className = "flash flash-error";
        note.setAttribute("role", "alert");
        note.textContent = "This deal was deleted or is no longer yours to see.";
        page.replaceChildren(note);
      }
    }).catch(function () { /* offline: the next event or a reload catches up */ });
  }

  function onDealEvent(data) {
    var page = dealPage();
    if (data.by && data.by === me) return;
    if (!page || String(data.deal) !== page.dataset.liveDeal) return;
    if (data.event === PRESENCE) { onPresence(page.dataset.liveDeal); return; }
    if (data.event === "deal.deleted") {
      // Nothing left to refresh: say so where the page's flashes go, and keep the page.
      stopEditing();
      var note = document.createElement("p");
      note.className = "flash flash-error";
      note.setAttribute("role", "alert");
      note.textContent = "This deal has just been deleted by someone else.";
      page.insertBefore(note, page.firstChild);
      page.querySelectorAll("form button, form input, form select, form textarea")
        .forEach(function (control) { control.disabled = true; });
      return;
    }
    if (Number(page.dataset.version) > data.version) return;
    // Someone typing here keeps their form; they see the change after saving (or a 409).
    if (page.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")) return;
    refreshDeal();
  }

  // The deal page's edit form is open (the Edit button swaps it in): presence.
  function watchEditForm() {
    var check = function () {
      var page = dealPage();
      var form = page && page.querySelector("form[action$='/edit/']");
      if (form) startEditing(page.dataset.liveDeal, null);
      else stopEditing();
    };
    document.body.addEventListener("htmx:afterSettle", check);
    check();
  }

  // --- the stream ------------------------------------------------------------------------

  // One hidden element holds the connection; the extension raises `sse:<name>` on it for
  // each event. A source the browser gave up on (the server answered an error) is made
  // anew by the extension without a Last-Event-ID: what it missed meanwhile is resynced.
  function connect(handlers) {
    var holder = document.createElement("div");
    holder.id = "live-stream";
    holder.hidden = true;
    holder.setAttribute("hx-ext", "sse");
    holder.setAttribute("sse-connect", STREAM_URL);
    holder.setAttribute("hx-trigger", EVENTS.map(function (name) { return "sse:" + name; }).join(", "));
    var lost = false;
    holder.addEventListener("sse:deal", function (event) { handlers.deal(JSON.parse(event.detail.data)); });
    holder.addEventListener("sse:resync", handlers.resync);
    holder.addEventListener("sse:degraded", handlers.down);
    holder.addEventListener("htmx:sseOpen", function () {
      handlers.up();
      if (lost) handlers.resync();
      lost = false;
    });
    holder.addEventListener("htmx:sseError", function (event) {
      handlers.down();
      var source = event.detail.source;
      if (source && source.readyState === EventSource.CLOSED) lost = true;
    });
    document.body.appendChild(holder);
    window.htmx.process(holder);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource || !window.htmx) return;
    var board = document.getElementById("board");
    var page = dealPage();
    if (board && board.dataset.pipeline) {
      document.addEventListener("board:editing", function (event) {
        var card = event.detail.card;
        if (event.detail.dialog === "next-dialog") return; // only reads: not editing
        if (event.detail.open) startEditing(card.id.slice("deal-".length), card);
        else { clearWarning(); stopEditing(); }
      });
      guardMoveMenu(board);
      connect({
        deal: function (data) { onBoardEvent(board, data); },
        resync: resyncBoard,
        down: function () { poll(board); },
        up: stopPolling,
      });
    } else if (page) {
      watchEditForm();
      connect({
        deal: onDealEvent,
        resync: refreshDeal,
        down: function () {},
        up: function () {},
      });
    }
    window.addEventListener("pagehide", function () { stopEditing(true); });
  });
})();

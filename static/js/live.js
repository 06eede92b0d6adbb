// The live board: hears of every change to a deal (ids and a version only, over
// Server-Sent Events) and fetches what changed through the ordinary views, so a page
// shows only what its user may see. On the board: the card moves to its column (or
// leaves the board), the columns' totals follow. On a deal page: the page refreshes.
// Without the stream (Redis down, proxy trouble) the board polls its totals instead.
(function () {
  "use strict";

  var POLL_MS = 10000;
  var HIGHLIGHT_MS = 4000;
  var source = null;
  var pollTimer = null;
  var headsTimer = null;

  var VERBS = {
    "deal.moved": "moved", "deal.created": "added", "deal.updated": "updated",
    "deal.reassigned": "reassigned", "deal.won": "won", "deal.lost": "lost",
    "deal.deleted": "deleted",
  };

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

  function place(board, data, html) {
    var wrapper = fragment(html).querySelector("template");
    if (!wrapper) return;
    var card = wrapper.content.querySelector(".card");
    var list = document.querySelector("#column-" + wrapper.dataset.stage + " .cards");
    var old = document.getElementById(card.id);
    if (old && list && old.parentElement === list) {
      old.replaceWith(card);
    } else {
      if (old) old.remove();
      if (!list) return; // a column this board does not show
      list.insertBefore(card, list.firstElementChild);
    }
    if (window.htmx) window.htmx.process(card);
    var who = wrapper.dataset.by;
    highlight(card, who ? (VERBS[data.event] || "changed") + " by " + who : "");
  }

  // This page's user: their own changes are answered by their own requests (the card, a
  // 409 with the fresh state), which a live refresh must not overtake or undo.
  var script = document.querySelector("script[data-live-user]");
  var me = script ? Number(script.dataset.liveUser) : 0;

  function onBoardEvent(board, data) {
    if (data.by && data.by === me) return;
    // Many deals at once (an import): the columns as a reload would show them.
    if (!data.deal) { resyncBoard(); return; }
    var shown = document.getElementById("deal-" + data.deal);
    // A deleted deal has no version (0) and no card to fetch: it leaves the board.
    if (data.event === "deal.deleted") {
      if (shown) shown.remove();
      scheduleHeads(board);
      return;
    }
    // The card already shows this version (our own move, answered) or a later one:
    // nothing to fetch. Activities change a card without changing the deal's version.
    var activity = String(data.event).indexOf("activity.") === 0;
    var version = shown ? Number(shown.dataset.version) : -1;
    if (version > data.version || (version === data.version && !activity)) return;
    var params = boardParams(board);
    if (data.by) params.set("by", data.by);
    get("/deals/" + data.deal + "/card/?" + params).then(function (response) {
      if (response.status === 404) {
        var gone = document.getElementById("deal-" + data.deal);
        if (gone) gone.remove();
      } else if (response.ok) {
        return response.text().then(function (html) { place(board, data, html); });
      }
    }).then(function () { scheduleHeads(board); });
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

  function onDealEvent(data) {
    var page = document.querySelector("[data-live-deal]"); // replaced by each refresh
    if (data.by && data.by === me) return;
    if (!page || String(data.deal) !== page.dataset.liveDeal) return;
    if (data.event === "deal.deleted") {
      // Nothing left to refresh: say so where the page's flashes go, and keep the page.
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
    if (!window.htmx) return;
    window.htmx.ajax("GET", window.location.pathname,
      { target: "#workspace", select: "#workspace", swap: "outerHTML" });
  }

  // --- the stream ------------------------------------------------------------------------

  function connect(onDeal, onResync, onDown, onUp) {
    source = new EventSource("/live/stream/");
    source.addEventListener("open", onUp);
    source.addEventListener("deal", function (event) { onDeal(JSON.parse(event.data)); });
    source.addEventListener("resync", onResync);
    source.addEventListener("degraded", onDown);
    source.addEventListener("error", function () {
      onDown();
      // EventSource retries by itself unless the server refused outright.
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(function () { connect(onDeal, onResync, onDown, onUp); }, POLL_MS);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource) return;
    var board = document.getElementById("board");
    var page = document.querySelector("[data-live-deal]");
    if (board && board.dataset.pipeline) {
      connect(
        function (data) { onBoardEvent(board, data); },
        resyncBoard,
        function () { poll(board); },
        function () { stopPolling(); });
    } else if (page) {
      connect(
        onDealEvent,
        function () { onDealEvent({ deal: page.dataset.liveDeal, version: Infinity }); },
        function () {}, function () {});
    }
  });
})();

// Search-as-you-type boxes: the header search and the contact pickers. htmx fetches the
// results; this only adds the keyboard (arrows move through results, Escape closes them)
// and closes the header dropdown on a click or focus elsewhere. A box is any
// input[type=search][data-results] whose data-results names the results element's id.
(function () {
  "use strict";

  function inputFor(el) {
    var region = el.closest("[data-results-for]");
    return region ? document.getElementById(region.getAttribute("data-results-for")) : null;
  }
  function resultsOf(input) { return document.getElementById(input.getAttribute("data-results")); }
  function items(input) {
    var region = resultsOf(input);
    return region ? Array.from(region.querySelectorAll("a, button")) : [];
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var input = target.matches("input[data-results]") ? target : inputFor(target);
    if (!input) return;
    var list = items(input);
    var at = list.indexOf(target);
    if (event.key === "Escape") {
      var region = resultsOf(input);
      if (region && region.childElementCount) {
        event.preventDefault();
        region.replaceChildren();
        input.focus();
      }
    } else if (event.key === "ArrowDown" && list.length) {
      event.preventDefault();
      list[Math.min(at + 1, list.length - 1)].focus();
    } else if (event.key === "ArrowUp" && at >= 0) {
      event.preventDefault();
      if (at === 0) input.focus(); else list[at - 1].focus();
    } else if (event.key === "Enter" && target === input && input.closest(".picker")) {
      // Enter searches now (htmx listens for "search"); it must not submit the host form.
      event.preventDefault();
      input.dispatchEvent(new Event("search"));
    }
  });

  // The header dropdown floats over the page: close it once the user is elsewhere.
  function closeHeaderUnlessIn(node) {
    var box = document.querySelector("[data-search-box]");
    var region = document.getElementById("search-dropdown");
    if (box && region && node && !box.contains(node)) region.replaceChildren();
  }
  document.addEventListener("click", function (event) { closeHeaderUnlessIn(event.target); });
  document.addEventListener("focusout", function (event) {
    var box = document.querySelector("[data-search-box]");
    if (box && box.contains(event.target)) closeHeaderUnlessIn(event.relatedTarget);
  });
})();

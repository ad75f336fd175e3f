// tc-scheduler's dashboard: every 30 s, while the tab is visible, fetch the page again and swap
// the sections marked data-refresh, keeping scroll and focus. Without it the pages work as is.
(function () {
  "use strict";
  var EVERY = 30000;
  var paused = false;

  function sections(root) {
    var found = {};
    root.querySelectorAll("[data-refresh]").forEach(function (el) {
      found[el.getAttribute("data-refresh")] = el;
    });
    return found;
  }

  // A table wider than the screen scrolls in its box: keyboard users can reach it too.
  function focusable(root) {
    root.querySelectorAll(".scroll").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
      }
    });
  }

  // The service's time, as the page says it (its clock, which may not be the browser's).
  function stamp(root) {
    var now = root.querySelector("[data-refresh=now] time");
    return now ? now.textContent : "";
  }

  function swap(page) {
    var fresh = sections(page);
    var current = sections(document);
    var x = window.scrollX, y = window.scrollY;
    Object.keys(current).forEach(function (key) {
      var old = current[key], replacement = fresh[key];
      // A section being used (focus inside it) is left as it is until the next time.
      if (!replacement || old.contains(document.activeElement)) return;
      var scrolled = Array.prototype.map.call(old.querySelectorAll(".scroll"), function (el) {
        return el.scrollLeft;
      });
      old.replaceWith(replacement);
      replacement.querySelectorAll(".scroll").forEach(function (el, i) {
        if (scrolled[i]) el.scrollLeft = scrolled[i];
      });
    });
    window.scrollTo(x, y);
    focusable(document);
  }

  function refresh(status) {
    if (paused || document.visibilityState !== "visible") return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var time = stamp(page);  // before the swap moves its sections into this page
        swap(page);
        status.textContent = "Updated for " + time + "; updates every 30 s";
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function (error) {
        status.textContent = "Could not update (" + error.message + "); trying again in 30 s";
      });
  }

  function start() {
    if (!document.querySelector("main [data-refresh]")) return;
    var bar = document.createElement("p");
    bar.className = "refresh";
    var status = document.createElement("span");
    status.textContent = "Loaded for " + stamp(document) + "; updates every 30 s";
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.textContent = "Pause updates";
    toggle.setAttribute("aria-pressed", "false");
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "Resume updates" : "Pause updates";
      toggle.setAttribute("aria-pressed", String(paused));
      if (!paused) refresh(status);
    });
    bar.appendChild(status);
    bar.appendChild(document.createTextNode(" "));
    bar.appendChild(toggle);
    var main = document.getElementById("main");
    var heading = main.querySelector("h1");
    main.insertBefore(bar, heading ? heading.nextSibling : main.firstChild);
    focusable(document);
    window.setInterval(function () { refresh(status); }, EVERY);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") refresh(status);
    });
    window.tcSchedulerRefresh = function () { refresh(status); };
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

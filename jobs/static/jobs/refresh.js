// Jobdeck: refresh parts of a server-rendered page in place. Every element with
// [data-jd-refresh] (and an id) is re-read from the same URL every data-interval ms
// while #jd-auto-refresh is ticked (the choice is remembered per page) and the tab is
// visible; a list with selected rows is left alone. The HTML comes from Django's
// templates (escaped there); nothing of it is built here.
"use strict";
(function () {
  const regions = Array.from(document.querySelectorAll("[data-jd-refresh][id]"));
  if (!regions.length) return;
  const auto = document.getElementById("jd-auto-refresh");
  const interval = parseInt(regions[0].dataset.interval || "5000", 10);
  const key = "jd-auto-refresh:" + location.pathname;
  if (auto) {
    if (window.localStorage && localStorage.getItem(key) === "off") auto.checked = false;
    auto.addEventListener("change", function () {
      try { localStorage.setItem(key, auto.checked ? "on" : "off"); } catch (err) { /* private mode */ }
    });
  }

  function busy() {
    // Rows ticked for an action, or a field being typed in: do not pull the page away.
    if (document.querySelector("input.action-select:checked, #action-toggle:checked")) return true;
    const active = document.activeElement;
    return !!(active && active.closest("[data-jd-refresh]") && active.matches("input, select, textarea"));
  }

  async function refresh() {
    if ((!auto || auto.checked) && !document.hidden && !busy()) {
      try {
        const response = await fetch(location.href, { credentials: "same-origin", headers: { "X-Jobdeck-Refresh": "1" } });
        if (response.ok) {
          const doc = new DOMParser().parseFromString(await response.text(), "text/html");
          let changed = false;
          for (const region of regions) {
            const fresh = doc.getElementById(region.id);
            if (fresh && fresh.innerHTML !== region.innerHTML) {
              region.replaceChildren(...fresh.childNodes);
              changed = true;
            }
          }
          document.body.dataset.refreshed = String(Date.now());
          if (changed) document.dispatchEvent(new CustomEvent("jd:refreshed"));
        }
      } catch (err) {
        /* keep what is shown; try again next time */
      }
    }
    window.setTimeout(refresh, interval);
  }
  window.setTimeout(refresh, interval);

  // Relative times on hover stay true however long the page is open.
  document.addEventListener("mouseover", function (event) {
    const node = event.target.closest && event.target.closest("time.jd-time[datetime]");
    if (!node) return;
    const seconds = Math.round((Date.now() - Date.parse(node.getAttribute("datetime"))) / 1000);
    const abs = Math.abs(seconds);
    const words = abs < 60 ? abs + " s" : abs < 3600 ? Math.floor(abs / 60) + " min" : abs < 86400 ? Math.floor(abs / 3600) + " h " + Math.floor(abs % 3600 / 60) + " min" : Math.floor(abs / 86400) + " d";
    node.title = seconds >= 0 ? words + " ago" : "in " + words;
  });
})();

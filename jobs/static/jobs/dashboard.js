// Jobdeck dashboard: re-fetch the server-rendered figures every few seconds.
"use strict";
(function () {
  const root = document.getElementById("jd-dashboard");
  if (!root) return;
  const target = document.getElementById("jd-figures");
  const auto = document.getElementById("jd-auto-refresh");
  const url = root.dataset.url;
  const interval = parseInt(root.dataset.interval || "5000", 10);

  async function refresh() {
    if (auto.checked && !document.hidden) {
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (response.ok) {
          // The fragment is rendered (and escaped) by Django's templates.
          const doc = new DOMParser().parseFromString(await response.text(), "text/html");
          target.replaceChildren(...doc.body.childNodes);
          root.dataset.refreshed = String(Date.now());
        }
      } catch (err) {
        /* keep the last figures; try again next time */
      }
    }
    window.setTimeout(refresh, interval);
  }
  window.setTimeout(refresh, interval);
})();

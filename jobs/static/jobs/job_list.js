// Jobdeck job list: after refresh.js swapped in new rows, let Django's actions.js know
// them (row selection, the counter), and confirm "retry all failed in this filter".
"use strict";
(function () {
  document.addEventListener("jd:refreshed", function () {
    const boxes = document.querySelectorAll("tr input.action-select");
    if (window.Actions && boxes.length && document.getElementById("action-toggle")) window.Actions(boxes);
  });
  const form = document.getElementById("jd-retry-failed-form");
  if (form) form.addEventListener("submit", function (event) {
    const count = document.querySelector('.jd-tab-count[data-state="failed"]');
    const n = count ? count.textContent.trim() : "the";
    if (!window.confirm("Retry " + n + " failed job(s) matching this filter?")) event.preventDefault();
  });
})();

// Jobdeck workflow page: while the workflow runs, re-read its small status endpoint
// every couple of seconds and recolour the graph's boxes (or the per-layer summary),
// the status, the progress and the buttons; stop once it finished. Everything from
// the server is inserted with textContent only, never as HTML.
"use strict";
(function () {
  const root = document.getElementById("jd-workflow");
  if (!root) return;
  const url = root.dataset.statusUrl;
  const interval = parseInt(root.dataset.interval || "2000", 10);
  const liveState = document.getElementById("jd-wf-live-state");

  function badge(status, text) {
    const node = document.createElement("span");
    node.className = "jd-badge jd-" + status;
    node.textContent = text;
    return node;
  }

  function badges(counts) {
    const out = [];
    for (const [status, n] of Object.entries(counts)) {
      out.push(badge(status, n + " " + status), document.createTextNode(" "));
    }
    return out;
  }

  function show(id, on) {
    const node = document.getElementById(id);
    if (node) node.hidden = !on;
  }

  function recolour(nodes) {
    for (const [id, status] of Object.entries(nodes)) {
      const box = document.getElementById("jd-node-" + id);
      if (!box || box.dataset.status === status) continue;
      box.setAttribute("class", "jd-node jd-" + status);
      box.dataset.status = status;
      const label = box.querySelector(".jd-node-status");
      if (label) label.textContent = status;
      const title = box.querySelector("title");
      if (title) title.textContent = title.textContent.replace(/\([a-z]+\)$/, "(" + status + ")");
    }
  }

  function update(data) {
    root.dataset.status = data.status;
    const head = document.getElementById("jd-wf-status");
    head.className = "jd-badge jd-" + data.status;
    head.textContent = data.status;
    const percent = data.total ? Math.floor(data.done * 100 / data.total) : 0;
    const fill = document.querySelector("#jd-wf-progress .jd-progress-fill");
    if (fill) {
      fill.style.width = percent + "%";
      fill.parentNode.setAttribute("aria-valuenow", percent);
    }
    const text = document.querySelector("#jd-wf-progress .jd-progress-text");
    if (text) text.textContent = data.done + " / " + data.total;
    document.getElementById("jd-wf-counts").replaceChildren(...badges(data.counts));
    show("jd-wf-cancel-tool", data.can_cancel);
    show("jd-wf-retry-tool", data.can_retry);
    if (data.nodes) recolour(data.nodes);
    if (data.layers) {
      data.layers.forEach(function (counts, n) {
        const cell = document.getElementById("jd-layer-" + (n + 1));
        if (cell) cell.replaceChildren(...badges(counts));
      });
    }
  }

  async function tick() {
    let finished = false;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      const data = await response.json();
      update(data);
      finished = data.finished;
      liveState.textContent = finished ? "workflow " + data.status + ": no more updates" : "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      liveState.textContent = "update failed: " + err.message + " (retrying)";
    }
    if (!finished) window.setTimeout(tick, interval);
  }

  // A finished workflow changes only through its buttons (which reload the page).
  if (root.dataset.status === "running") window.setTimeout(tick, interval);
})();

// Jobdeck job page: live status, progress and a log viewer that tails by polling.
// Log messages are inserted with textContent only, never as HTML.
"use strict";
(function () {
  const root = document.getElementById("jd-live");
  if (!root) return;
  const statusUrl = root.dataset.statusUrl;
  const logsUrl = root.dataset.logsUrl;
  const tail = parseInt(root.dataset.tail || "200", 10);
  const FINISHED = ["completed", "failed", "cancelled"];
  const log = document.getElementById("jd-log");
  const follow = document.getElementById("jd-follow");
  const state = document.getElementById("jd-log-state");
  let cursor = null;
  let status = root.dataset.status;
  let busy = false;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addLines(lines) {
    const stick = follow.checked;
    for (const line of lines) {
      const item = el("li", "jd-line jd-level-" + line.level);
      item.dataset.id = line.id;
      item.appendChild(el("span", "jd-at", line.at.replace("T", " ").slice(0, 19)));
      item.appendChild(el("span", "jd-level", line.level.toUpperCase()));
      item.appendChild(el("span", "jd-msg", line.message));
      log.appendChild(item);
    }
    if (stick && lines.length) log.scrollTop = log.scrollHeight;
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    return response.json();
  }

  function setBadge(node, value) {
    node.className = "jd-badge jd-" + value;
    node.textContent = value;
  }

  async function pollStatus() {
    const data = await getJSON(statusUrl);
    status = data.status;
    setBadge(document.getElementById("jd-status"), data.status);
    document.getElementById("jd-progress-fill").style.width = data.progress + "%";
    document.getElementById("jd-progress-fill").parentNode.setAttribute("aria-valuenow", data.progress);
    document.getElementById("jd-progress-text").textContent =
      data.progress + "% (" + data.progress_done + "/" + data.progress_total + " tasks)";
    document.getElementById("jd-duration").textContent = data.duration;
    const note = document.getElementById("jd-cancel-note");
    if (note) note.hidden = !(data.cancel_requested && data.status === "running");
    const cancelTool = document.getElementById("jd-cancel-tool");
    if (cancelTool) cancelTool.hidden = !data.can_cancel;
    const retryTool = document.getElementById("jd-retry-tool");
    if (retryTool) retryTool.hidden = !data.can_retry;
    for (const task of data.tasks) {
      const badge = document.querySelector('.jd-badge[data-task="' + task.position + '"]');
      if (badge) setBadge(badge, task.status);
      if (badge) {
        const row = badge.closest("tr");
        const cell = row && row.querySelector("td.field-duration p, td.field-duration");
        if (cell) cell.textContent = task.duration;
      }
    }
  }

  async function pollLogs() {
    if (cursor === null) {
      const data = await getJSON(logsUrl + "?tail=" + tail);
      log.replaceChildren();
      addLines(data.lines);
      cursor = data.cursor;
    } else if (follow.checked) {
      const data = await getJSON(logsUrl + "?after=" + cursor);
      addLines(data.lines);
      cursor = data.cursor;
    }
  }

  async function tick() {
    if (busy) return;
    busy = true;
    try {
      await pollStatus();
      await pollLogs();
      state.textContent = follow.checked
        ? (FINISHED.includes(status) ? "job " + status + "; following stopped after the last line" : "following…")
        : "paused";
    } catch (err) {
      state.textContent = "update failed: " + err.message + " (retrying)";
    } finally {
      busy = false;
    }
    const finished = FINISHED.includes(status);
    // Poll quickly while the job is active; a finished job is read once more, then slowly.
    window.setTimeout(tick, finished ? 10000 : 1000);
  }

  follow.addEventListener("change", function () {
    if (follow.checked) log.scrollTop = log.scrollHeight;
  });
  tick();
})();

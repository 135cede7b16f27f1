// Jobdeck job page: every changing fact from one small status endpoint, the tasks a
// page at a time, and a log viewer (level filter, search) that tails by polling.
// Everything from the server is inserted with textContent only, never as HTML.
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
  const level = document.getElementById("jd-log-level");
  const search = document.getElementById("jd-log-search");
  const logState = document.getElementById("jd-log-state");
  const liveState = document.getElementById("jd-live-state");
  const tasksBox = document.getElementById("jd-tasks");
  const taskFollow = document.getElementById("jd-task-follow");
  const hashes = { eh: null, rh: null, ch: null };
  let taskPage = tasksBox ? parseInt(tasksBox.dataset.page || "1", 10) : 1;
  let taskPages = tasksBox ? parseInt(tasksBox.dataset.pages || "1", 10) : 1;
  let cursor = null;
  let status = root.dataset.status;
  let busy = false;
  let timer = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function setBadge(node, value) {
    node.className = "jd-badge jd-" + value;
    node.textContent = value;
  }

  function relative(iso) {
    const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
    const abs = Math.abs(seconds);
    const words = abs < 60 ? abs + " s" : abs < 3600 ? Math.floor(abs / 60) + " min" : abs < 86400 ? Math.floor(abs / 3600) + " h" : Math.floor(abs / 86400) + " d";
    return seconds >= 0 ? words + " ago" : "in " + words;
  }

  function cell(name) {
    // A line of several fields is a .form-row with every field's class; each field is
    // then in its own .fieldBox.
    return document.querySelector(".fieldBox.field-" + name + " .readonly") ||
      document.querySelector(".form-row.field-" + name + " .readonly");
  }

  function setText(name, text) {
    const node = cell(name);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function setTime(name, value) {
    const node = cell(name);
    if (!node) return;
    if (!value) { if (node.textContent !== "—") node.textContent = "—"; return; }
    const current = node.querySelector("time");
    if (current && current.getAttribute("datetime") === value[1]) { current.title = relative(value[1]); return; }
    const time = el("time", "jd-time", value[0]);
    time.setAttribute("datetime", value[1]);
    time.title = relative(value[1]);
    node.replaceChildren(time);
  }

  function setBlob(name, key, blob, cls) {
    hashes[key] = blob.hash;
    if (blob.text === undefined) return;  // unchanged since the last poll
    const node = cell(name);
    if (!node) return;
    if (!blob.text) { node.textContent = "—"; return; }
    node.replaceChildren(el("pre", cls, blob.text));
  }

  function show(id, on) {
    const node = document.getElementById(id);
    if (node) node.hidden = !on;
  }

  function renderTasks(data) {
    if (!tasksBox) return;
    taskPage = data.tasks_page.page;
    taskPages = data.tasks_page.pages;
    tasksBox.dataset.page = taskPage;
    const counts = document.getElementById("jd-task-counts");
    const badges = Object.entries(data.tasks_page.counts).map(function ([s, n]) {
      const badge = el("span", "jd-badge jd-" + s, n + " " + s);
      return badge;
    });
    counts.replaceChildren(...(badges.length ? badges.flatMap(function (b) { return [b, document.createTextNode(" ")]; }) : [document.createTextNode("No tasks.")]));
    document.getElementById("jd-task-page").textContent =
      "page " + taskPage + " of " + taskPages + " (" + data.tasks_page.total + " tasks, " + data.tasks_page.per_page + " a page)";
    const rows = data.tasks.map(function (t) {
      const tr = el("tr");
      tr.dataset.position = t.position;
      tr.appendChild(el("td", "", String(t.position)));
      tr.appendChild(el("td", "", t.name));
      const td = el("td");
      const badge = el("span", "jd-badge jd-" + t.status, t.status);
      badge.dataset.task = t.position;
      td.appendChild(badge);
      tr.appendChild(td);
      tr.appendChild(el("td", "jd-t-attempts", String(t.attempts)));
      tr.appendChild(el("td", "jd-t-started", t.started));
      tr.appendChild(el("td", "jd-t-duration", t.duration));
      tr.appendChild(el("td", "jd-t-error jd-error", t.error));
      return tr;
    });
    document.getElementById("jd-task-rows").replaceChildren(...rows);
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 404) throw new Error("the job is gone");
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    return response.json();
  }

  async function pollStatus() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(hashes)) if (value) params.set(key, value);
    params.set("tp", taskFollow && taskFollow.checked ? "auto" : String(taskPage));
    if (document.getElementById("jd-deps")) params.set("deps", "1");
    const data = await getJSON(statusUrl + "?" + params.toString());
    status = data.status;
    root.dataset.status = status;
    setBadge(document.getElementById("jd-status"), data.status);
    const fill = document.getElementById("jd-progress-fill");
    fill.style.width = data.progress + "%";
    fill.parentNode.setAttribute("aria-valuenow", data.progress);
    document.getElementById("jd-progress-text").textContent =
      data.progress + "% (" + data.progress_done + "/" + data.progress_total + " tasks)";
    document.getElementById("jd-duration").textContent = data.duration;
    show("jd-cancel-note", data.cancel_requested && data.status === "running");
    show("jd-cancel-tool", data.can_cancel);
    show("jd-retry-tool", data.can_retry);
    show("jd-retry-config-tool", data.can_retry);
    show("jd-submit-tool", data.can_submit);
    show("jd-discard-tool", data.can_discard);
    show("jd-run-now-tool", data.can_run_now);
    for (const [name, text] of Object.entries(data.fields)) setText(name, text);
    for (const [name, value] of Object.entries(data.times)) setTime(name, value);
    setBlob("error_pretty", "eh", data.error, "jd-pre jd-error");
    setBlob("result_pretty", "rh", data.result, "jd-pre");
    setBlob("config_pretty", "ch", data.config, "jd-pre");
    renderTasks(data);
    // The parents and children listed on the page (their statuses, by job id).
    for (const [id, value] of Object.entries(data.deps || {})) {
      for (const node of document.querySelectorAll('[data-dep="' + id + '"]')) setBadge(node, value);
    }
    liveState.textContent = "updated " + new Date().toLocaleTimeString();
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

  function filters() {
    const params = new URLSearchParams();
    if (level.value) params.set("level", level.value);
    if (search.value.trim()) params.set("q", search.value.trim());
    return params;
  }

  async function pollLogs() {
    const params = filters();
    if (cursor === null) {
      params.set("tail", tail);
      const data = await getJSON(logsUrl + "?" + params.toString());
      log.replaceChildren();
      addLines(data.lines);
      cursor = data.cursor;
      if (!data.lines.length) logState.textContent = "";
    } else if (follow.checked && status !== "draft") {
      params.set("after", cursor);
      const data = await getJSON(logsUrl + "?" + params.toString());
      addLines(data.lines);
      cursor = data.cursor;
    }
  }

  function describeLog() {
    const filtered = level.value || search.value.trim() ? " (filtered)" : "";
    if (status === "draft") return "draft: nothing runs, so nothing is logged, until it is submitted";
    if (!follow.checked) return "paused" + filtered;
    if (FINISHED.includes(status)) return "job " + status + ": this is the whole log" + filtered;
    if (status === "pending") return "waiting for a worker…" + filtered;
    return "following…" + filtered;
  }

  async function tick() {
    window.clearTimeout(timer);
    if (busy) { timer = window.setTimeout(tick, 250); return; }
    busy = true;
    try {
      await pollStatus();
      await pollLogs();
      logState.textContent = describeLog();
    } catch (err) {
      liveState.textContent = "update failed: " + err.message + " (retrying)";
    } finally {
      busy = false;
    }
    // Quick while the job is active; a finished job or a draft is read slowly.
    const slow = FINISHED.includes(status) || status === "draft";
    timer = window.setTimeout(tick, slow ? 10000 : 1000);
  }

  function refilter() {
    cursor = null;
    tick();
  }

  follow.addEventListener("change", function () {
    if (follow.checked) log.scrollTop = log.scrollHeight;
    logState.textContent = describeLog();
  });
  level.addEventListener("change", refilter);
  let typing = null;
  search.addEventListener("input", function () {
    window.clearTimeout(typing);
    typing = window.setTimeout(refilter, 300);
  });
  if (tasksBox) {
    tasksBox.addEventListener("click", function (event) {
      const button = event.target.closest("[data-go]");
      if (!button) return;
      const go = button.dataset.go;
      taskPage = go === "first" ? 1 : go === "last" ? taskPages : go === "prev" ? Math.max(1, taskPage - 1) : Math.min(taskPages, taskPage + 1);
      if (taskFollow) taskFollow.checked = false;  // the operator chose a page
      tick();
    });
    if (taskFollow) taskFollow.addEventListener("change", tick);
  }
  const discard = document.getElementById("jd-discard-form");
  if (discard) discard.addEventListener("submit", function (event) {
    if (!window.confirm("Discard this draft? It is deleted and never runs.")) event.preventDefault();
  });
  tick();
})();

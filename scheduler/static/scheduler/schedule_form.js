// Jobdeck schedule form: only the chosen kind's fields, a live preview of the next
// occurrences (with DST flags) while editing, and a warning while dry run is off.
"use strict";
(function () {
  const form = document.getElementById("schedule_form");
  if (!form) return;
  const kind = form.querySelector("#id_kind");
  const box = document.getElementById("jd-live-preview");
  const FIELDS = { interval: ["interval_minutes"], daily: ["time"], weekly: ["time", "weekdays"], cron: ["cron"] };
  const ALL = ["interval_minutes", "time", "weekdays", "cron"];

  function row(name) { return form.querySelector(".form-row.field-" + name) || form.querySelector(".field-" + name); }

  function showKind() {
    if (!kind) return;
    const wanted = FIELDS[kind.value] || [];
    for (const name of ALL) {
      const node = row(name);
      if (node) node.hidden = kind.value !== "" && !wanted.includes(name);
    }
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  let timer = null;
  async function preview() {
    if (!box || !kind) return;
    const params = new URLSearchParams();
    params.set("kind", kind.value);
    for (const name of ["interval_minutes", "time", "cron", "timezone"]) {
      const input = form.querySelector("#id_" + name);
      if (input) params.set(name, input.value);
    }
    for (const day of form.querySelectorAll("input[name=weekdays]:checked")) params.append("weekdays", day.value);
    try {
      const response = await fetch(box.dataset.url + "?" + params.toString(), { credentials: "same-origin" });
      const data = await response.json();
      const error = document.getElementById("jd-preview-error");
      error.hidden = !data.error;
      error.textContent = data.error || "";
      document.getElementById("jd-preview-describe").textContent = data.describe || "";
      const rows = (data.rows || []).map(function (r) {
        const tr = el("tr", r.dst ? "jd-dst-row" : "");
        tr.appendChild(el("td", "", r.local_display));
        tr.appendChild(el("td", "", r.utc));
        tr.appendChild(el("td", "jd-dst", r.note || ""));
        return tr;
      });
      document.getElementById("jd-preview-rows").replaceChildren(...rows);
      box.dataset.updated = String(Date.now());
    } catch (err) { /* keep the last preview */ }
  }
  function later() { window.clearTimeout(timer); timer = window.setTimeout(preview, 250); }

  // The live preview sits under the timing fields.
  const tzRow = row("timezone");
  if (box && tzRow && tzRow.closest("fieldset")) tzRow.closest("fieldset").after(box);
  const dry = form.querySelector("#id_dry_run");
  const warning = document.getElementById("jd-dryrun-warning");
  if (dry && warning) {
    const dryRow = row("dry_run");
    if (dryRow) dryRow.appendChild(warning);
    const sync = function () { warning.hidden = dry.checked; };
    dry.addEventListener("change", sync);
    sync();
  }
  if (kind) kind.addEventListener("change", function () { showKind(); later(); });
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  const jobType = form.querySelector("#id_job_type");
  if (jobType && location.pathname.endsWith("/add/")) {
    // A new schedule: reload with the type chosen, to get its generated config form.
    jobType.addEventListener("change", function () {
      const params = new URLSearchParams(location.search);
      params.set("job_type", jobType.value);
      const name = form.querySelector("#id_name");
      if (name && name.value) params.set("name", name.value);
      location.search = params.toString();
    });
  }
  const configRows = form.querySelectorAll(".jd-config-fields");
  if (jobType && configRows.length) {
    const initial = jobType.value;
    jobType.addEventListener("change", function () {
      // Another type: its generated form comes after saving; meanwhile the raw JSON counts.
      const changed = jobType.value !== initial;
      configRows.forEach(function (fs) { fs.hidden = changed; });
      const typeInput = form.querySelector("input[name=_config_type]");
      if (typeInput) typeInput.disabled = changed;
      const raw = form.querySelector("#id_config");
      if (raw && changed) { raw.type = "text"; raw.value = "{}"; }
    });
  }
  showKind();
  preview();
})();

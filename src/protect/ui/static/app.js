// The protect page: choose pictures, preview, protect, back up the key, detect.
// Talks only to the local server that served it (same origin, session cookie).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const I18N = window.PROTECT_I18N;
  let lang = "en";
  let info = null;
  let files = [];          // [{file: File, path: "folder/a.png"}]
  let skipped = 0;
  let preview = null;      // last preview response
  let view = "after";
  let zoom = 1;
  let flipTimer = null;
  let preset = "standard";

  function t(key, vars) {
    let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function pickLang() {
    const saved = localStorage.getItem("protect-lang");
    if (saved && I18N[saved]) return saved;
    for (const l of navigator.languages || [navigator.language || "en"]) {
      const base = String(l).toLowerCase().split("-")[0];
      if (I18N[base]) return base;
    }
    return "en";
  }

  function applyLang() {
    document.documentElement.lang = lang;
    $("lang").value = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    renderPresets();
    renderSelects();
    renderFiles();
    renderKey();
    renderDetail();
    renderResults();
  }

  // ------------------------------------------------------------ settings

  function ext(name) { const i = name.lastIndexOf("."); return i < 0 ? "" : name.slice(i).toLowerCase(); }

  function renderPresets() {
    const box = $("presets");
    box.textContent = "";
    if (!info) return;
    for (const [name, value] of Object.entries(info.presets)) {
      const label = document.createElement("label");
      label.className = "preset" + (name === preset ? " active" : "");
      const input = document.createElement("input");
      input.type = "radio"; input.name = "preset"; input.value = name; input.checked = name === preset;
      input.id = "preset-" + name;
      input.addEventListener("change", () => {
        preset = name; $("strength").value = value; strengthChanged(); renderPresets();
      });
      const title = document.createElement("strong");
      title.textContent = t("preset_" + name);
      const desc = document.createElement("span");
      desc.textContent = t("preset_" + name + "_desc") + " (" + value + ")";
      label.append(input, title, desc);
      box.append(label);
    }
  }

  function renderSelects() {
    if (!info) return;
    const method = $("method"), keep = method.value || info.default_method;
    method.textContent = "";
    for (const m of info.methods) {
      const o = document.createElement("option"); o.value = m; o.textContent = t("method_" + m);
      method.append(o);
    }
    method.value = keep;
    const fmt = $("format"), keepFmt = fmt.value;
    fmt.textContent = "";
    const same = document.createElement("option"); same.value = ""; same.textContent = t("format_same"); fmt.append(same);
    for (const f of info.formats) { const o = document.createElement("option"); o.value = f; o.textContent = f.toUpperCase(); fmt.append(o); }
    fmt.value = keepFmt;
    const pos = $("visible-position"), keepPos = pos.value || "bottom-right";
    pos.textContent = "";
    for (const p of info.positions) { const o = document.createElement("option"); o.value = p; o.textContent = t("pos_" + p); pos.append(o); }
    pos.value = keepPos;
  }

  function strengthChanged() {
    const v = Number($("strength").value);
    $("strength-value").textContent = v.toFixed(2);
    const match = Object.entries(info.presets).find(([, value]) => Math.abs(value - v) < 1e-9);
    preset = match ? match[0] : null;
  }

  function options() {
    const o = {
      strength: Number($("strength").value),
      method: $("method").value,
      format: $("format").value || null,
      opt_out: $("opt-out").checked,
      author: $("author").value.trim() || null,
      copyright: $("copyright").value.trim() || null,
    };
    if ($("use-mark").checked && $("mark").value.trim()) o.mark = $("mark").value.trim();
    if ($("use-visible").checked && $("visible").value.trim()) {
      o.visible = $("visible").value.trim();
      o.visible_position = $("visible-position").value;
    }
    return o;
  }

  // --------------------------------------------------------------- files

  function addFiles(list) {
    for (const item of list) {
      if (!info.extensions.includes(ext(item.path))) { skipped++; continue; }
      files.push(item);
    }
    renderFiles();
  }

  function readEntry(entry, prefix) {
    return new Promise((resolve) => {
      if (entry.isFile) {
        entry.file((f) => resolve([{ file: f, path: prefix + f.name }]), () => resolve([]));
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        const all = [];
        const more = () => reader.readEntries(async (entries) => {
          if (!entries.length) {
            const nested = await Promise.all(all.map((e) => readEntry(e, prefix + entry.name + "/")));
            resolve(nested.flat());
          } else { all.push(...entries); more(); }
        }, () => resolve([]));
        more();
      } else resolve([]);
    });
  }

  async function fromDataTransfer(dt) {
    const entries = [];
    for (const item of dt.items || []) {
      const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      if (entry) entries.push(entry);
    }
    if (entries.length) return (await Promise.all(entries.map((e) => readEntry(e, "")))).flat();
    return Array.from(dt.files || []).map((f) => ({ file: f, path: f.webkitRelativePath || f.name }));
  }

  function renderFiles() {
    $("file-count").textContent = files.length ? t("file_count", { n: files.length }) +
      (skipped ? " — " + t("skipped_files", { n: skipped }) : "") : t("file_count_none");
    const ul = $("file-list");
    ul.textContent = "";
    files.slice(0, 50).forEach((f, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button"; b.className = "link"; b.textContent = f.path;
      b.addEventListener("click", () => { previewIndex = i; runPreview(); });
      li.append(b); ul.append(li);
    });
    if (files.length > 50) { const li = document.createElement("li"); li.textContent = "…"; ul.append(li); }
    $("protect-button").textContent = files.length ? t("protect_button", { n: files.length }) : t("protect_button_none");
    $("protect-button").disabled = !files.length;
    $("preview-button").disabled = !files.length;
  }

  function zone(el, onFiles) {
    el.addEventListener("dragover", (e) => { e.preventDefault(); el.classList.add("over"); });
    el.addEventListener("dragleave", () => el.classList.remove("over"));
    el.addEventListener("drop", async (e) => {
      e.preventDefault(); el.classList.remove("over");
      onFiles(await fromDataTransfer(e.dataTransfer));
    });
  }

  // ------------------------------------------------------------- requests

  async function api(path, body) {
    const init = { method: body === undefined ? "GET" : "POST", credentials: "same-origin" };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) { init.body = JSON.stringify(body); init.headers = { "content-type": "application/json" }; }
    const r = await fetch(path, init);
    const type = r.headers.get("content-type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (!r.ok) {
      const code = data && data.error;
      const msg = r.status === 413 ? t("error_too_large") : code === "not_a_picture" ? t("error_not_a_picture") :
        code === "bad_options" ? t("error_bad_options", { detail: data.detail || "" }) :
        (data && data.detail) || t("error_generic", { status: r.status });
      throw new Error(msg);
    }
    return data;
  }

  function form(file, path, opts) {
    const fd = new FormData();
    fd.append("path", path);
    if (opts) fd.append("options", JSON.stringify(opts));
    fd.append("file", file, file.name);
    return fd;
  }

  // -------------------------------------------------------------- preview

  let previewIndex = 0;
  let centre = { cx: 0.5, cy: 0.5 };

  async function runPreview() {
    if (!files.length) return;
    const f = files[Math.min(previewIndex, files.length - 1)];
    $("preview-status").textContent = t("preview_working");
    try {
      preview = await api("/api/preview", form(f.file, f.path, { ...options(), ...centre }));
      preview.name = f.path;
      $("preview-status").textContent = [f.path, ...(preview.notes || [])].join(" — ");
      $("overview").src = preview.overview;
      renderDetail();
    } catch (err) {
      $("preview-status").textContent = t("preview_failed", { reason: err.message });
    }
  }

  function renderDetail() {
    if (!preview) return;
    const img = $("detail");
    img.src = preview[view];
    img.style.width = preview.crop.width * zoom + "px";
    img.style.height = preview.crop.height * zoom + "px";
    const names = { after: t("view_after"), before: t("view_before"), diff10: t("view_diff") };
    $("detail-caption").textContent = t("detail_caption", {
      view: names[view], zoom: zoom * 100, w: preview.crop.width, h: preview.crop.height,
      x: preview.crop.x, y: preview.crop.y, psnr: preview.psnr });
    document.querySelectorAll("button.view").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
    document.querySelectorAll("button.zoom").forEach((b) => b.classList.toggle("active", Number(b.dataset.zoom) === zoom));
    const ov = $("overview"), box = $("crop-box");
    if (ov.naturalWidth) {
      const s = ov.clientWidth / preview.size.width;
      box.style.left = preview.crop.x * s + "px"; box.style.top = preview.crop.y * s + "px";
      box.style.width = preview.crop.width * s + "px"; box.style.height = preview.crop.height * s + "px";
      box.hidden = false;
    }
  }

  function flip() { view = view === "before" ? "after" : "before"; renderDetail(); }

  // ------------------------------------------------------------------ run

  let lastRun = null;

  async function protectAll() {
    const btn = $("protect-button");
    btn.disabled = true;
    const bar = $("progress");
    bar.hidden = false; bar.max = files.length * 2; bar.value = 0;
    lastRun = { results: [], finished: false, failedUploads: [] };
    try {
      const batch = await api("/api/batches", options());
      for (let i = 0; i < files.length; i++) {
        $("run-status").textContent = t("uploading", { i: i + 1, n: files.length });
        try { await api(`/api/batches/${batch.id}/files`, form(files[i].file, files[i].path)); }
        catch (err) { lastRun.failedUploads.push({ name: files[i].path, status: "failed", reason: err.message }); }
        bar.value = i + 1;
      }
      let state = await api(`/api/batches/${batch.id}/start`, {});
      while (!state.finished) {
        await new Promise((r) => setTimeout(r, 300));
        state = await api(`/api/batches/${batch.id}`);
        bar.value = files.length + state.done * files.length / Math.max(state.total, 1);
        $("run-status").textContent = t("protecting", { done: state.done, n: state.total });
        lastRun.results = state.results;
      }
      lastRun = { ...state, failedUploads: lastRun.failedUploads };
      bar.value = bar.max;
    } catch (err) {
      lastRun.error = err.message;
    }
    lastRun.finished = true;
    renderResults();
    btn.disabled = false;
  }

  function renderResults() {
    const ul = $("results");
    ul.textContent = "";
    if (!lastRun) return;
    const rows = [...(lastRun.results || []), ...(lastRun.failedUploads || [])];
    for (const r of rows) {
      const li = document.createElement("li");
      li.className = r.status;
      li.textContent = `${r.name}: ${t("status_" + r.status)}` + (r.out ? " — " + t("saved_as", { path: r.out }) : "") +
        (r.reason ? " — " + r.reason : "") + (r.note ? " — " + r.note : "");
      ul.append(li);
    }
    if (lastRun.finished) {
      const ok = rows.filter((r) => r.status === "protected").length;
      $("run-status").textContent = lastRun.error ? lastRun.error : t("finished", { ok, failed: rows.length - ok });
    }
  }

  // ------------------------------------------------------------------ key

  function renderKey() {
    if (!info) return;
    const k = info.key;
    let s = k.source === "key file" ? t("key_file", { path: k.path }) : k.source === "environment" ? t("key_env") : t("key_option");
    if (k.created) s += " " + t("key_created");
    $("key-where").textContent = s;
  }

  async function backupKey() {
    const r = await fetch("/api/key-backup", { method: "POST", credentials: "same-origin" });
    if (!r.ok) return;
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url; a.download = "protect-key.txt"; document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // --------------------------------------------------------------- detect

  async function detectFiles(list) {
    const ul = $("detect-results");
    for (const f of list) {
      const li = document.createElement("li");
      li.textContent = f.path + " …"; ul.prepend(li);
      try {
        const d = await api("/api/detect", form(f.file, f.path));
        li.className = d.found ? "found" : "not-found";
        li.textContent = d.found ? (d.text !== null ? t("detect_found", { name: d.name, text: d.text })
          : t("detect_found_hex", { name: d.name, hex: d.hex })) : t("detect_not_found", { name: d.name });
      } catch (err) {
        li.className = "failed";
        li.textContent = t("detect_failed", { name: f.path, reason: err.message });
      }
    }
  }

  // ----------------------------------------------------------------- wire

  function applyDefaults(d) {  // the artist's config.toml
    if (typeof d.strength === "number") $("strength").value = d.strength;
    if (d.method) $("method").value = d.method;
    if (d.format) $("format").value = d.format === "jpg" ? "jpeg" : d.format;
    if (d.visible_position) $("visible-position").value = d.visible_position;
    for (const [box, field] of [["use-mark", "mark"], ["use-visible", "visible"]]) {
      if (d[field]) { $(box).checked = true; $(field).value = d[field]; $(field).disabled = false; }
    }
    $("visible-position").disabled = !$("use-visible").checked;
    if (d.author) $("author").value = d.author;
    if (d.copyright) $("copyright").value = d.copyright;
    if (typeof d.opt_out === "boolean") $("opt-out").checked = d.opt_out;
  }

  async function start() {
    info = await api("/api/info");
    lang = pickLang();
    $("version").textContent = info.version;
    $("out-dir").textContent = info.out_dir;
    $("strength").value = info.presets[preset] !== undefined ? info.presets[preset] : info.default_strength;
    applyLang();
    applyDefaults(info.defaults || {});
    strengthChanged();
    renderPresets();
    $("lang").addEventListener("change", () => { lang = $("lang").value; localStorage.setItem("protect-lang", lang); applyLang(); });
    $("strength").addEventListener("input", () => { strengthChanged(); renderPresets(); });
    $("pick-files").addEventListener("click", () => $("file-input").click());
    $("pick-folder").addEventListener("click", () => $("folder-input").click());
    for (const id of ["file-input", "folder-input"]) {
      $(id).addEventListener("change", (e) => {
        addFiles(Array.from(e.target.files).map((f) => ({ file: f, path: f.webkitRelativePath || f.name })));
        e.target.value = "";
      });
    }
    zone($("dropzone"), addFiles);
    zone($("detect-zone"), detectFiles);
    $("detect-pick").addEventListener("click", () => $("detect-input").click());
    $("detect-input").addEventListener("change", (e) => {
      detectFiles(Array.from(e.target.files).map((f) => ({ file: f, path: f.name }))); e.target.value = "";
    });
    for (const [box, field] of [["use-mark", "mark"], ["use-visible", "visible"], ["use-visible", "visible-position"]]) {
      $(box).addEventListener("change", () => { $(field).disabled = !$(box).checked; });
    }
    $("preview-button").addEventListener("click", () => { previewIndex = 0; runPreview(); });
    document.querySelectorAll("button.zoom").forEach((b) => b.addEventListener("click", () => { zoom = Number(b.dataset.zoom); renderDetail(); }));
    document.querySelectorAll("button.view").forEach((b) => b.addEventListener("click", () => { view = b.dataset.view; renderDetail(); }));
    $("flip").addEventListener("click", flip);
    $("auto-flip").addEventListener("change", () => {
      clearInterval(flipTimer); flipTimer = $("auto-flip").checked ? setInterval(flip, 700) : null;
    });
    $("overview").addEventListener("click", (e) => {
      const r = e.target.getBoundingClientRect();
      centre = { cx: (e.clientX - r.left) / r.width, cy: (e.clientY - r.top) / r.height };
      runPreview();
    });
    $("overview").addEventListener("load", renderDetail);
    $("protect-button").addEventListener("click", protectAll);
    $("open-folder").addEventListener("click", async () => {
      const r = await api("/api/open-folder", {});
      $("run-status").textContent = r.opened ? t("folder_opened") : t("folder_not_opened", { path: r.path });
    });
    $("change-folder").addEventListener("click", () => { $("folder-form").hidden = false; $("folder-path").value = $("out-dir").textContent; });
    $("folder-ok").addEventListener("click", async () => {
      try {
        const r = await api("/api/out-dir", { path: $("folder-path").value });
        $("out-dir").textContent = r.out_dir; $("folder-form").hidden = true;
      } catch (err) { $("run-status").textContent = err.message; }
    });
    $("key-backup").addEventListener("click", backupKey);
    $("stop").hidden = !info.can_stop;
    $("stop").addEventListener("click", async () => {
      try { await api("/api/stop", {}); } catch (err) { /* the server may be gone already */ }
      document.querySelector("main").hidden = true; $("stop").hidden = true; $("stopped").hidden = false;
    });
    document.body.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", start);
})();

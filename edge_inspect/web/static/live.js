// edge-inspect live page: polls the JSON API and keeps one MJPEG stream open while the tab is visible.
// Memory stays flat over a shift: fixed DOM nodes are updated in place, nothing accumulates.
"use strict";
(() => {
  const data = document.body.dataset;
  const byId = (id) => document.getElementById(id);
  const STATUS_EVERY_MS = 1000;
  const REJECTS_EVERY_MS = 2000;
  const RETRY_STREAM_MS = 3000;

  const text = (id, value) => {
    const el = byId(id);
    if (el && el.textContent !== value) el.textContent = value;
  };
  const num = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const clock = (wallSeconds) => new Date(wallSeconds * 1000).toLocaleTimeString();
  const clockMs = (wallSeconds) => {
    const d = new Date(wallSeconds * 1000);
    return `${d.toLocaleTimeString()}.${String(d.getMilliseconds()).padStart(3, "0")}`;
  };

  async function getJson(url) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 4000);
    try {
      const response = await fetch(url, {
        signal: abort.signal, cache: "no-store", credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) { window.location.assign(data.loginUrl); return null; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  function setState(label, cls) {
    const el = byId("state");
    text("state", label);
    const wanted = `state ${cls}${el.classList.contains("andon-state") ? " andon-state" : ""}`;
    if (el.className !== wanted) el.className = wanted;
  }
  const show = (id, visible) => { const el = byId(id); if (el) el.hidden = !visible; };
  const percent = (part, whole) => (whole ? `${num((100 * part) / whole, 1)} %` : "–");

  function showVerdict(s) {
    const el = byId("verdict");
    if (!el) return;
    const last = s.last_part;
    const stopped = s.state === "STOPPED";
    const verdict = last ? last.verdict : "none";
    const label = { good: "GOOD", defect: "REJECT", failsafe: "FAIL-SAFE", none: "–" }[verdict] || verdict;
    text("verdict-text", label);
    text("verdict-detail", last ? `#${last.part_id} · ${clock(last.capture_wall_time_s)}${
      last.defect_score === null ? "" : ` · score ${num(last.defect_score, 4)}`}${stopped ? " · stopped" : ""}` : "");
    const wanted = `verdict verdict-${verdict}${stopped ? " verdict-old" : ""}`;
    if (el.className !== wanted) el.className = wanted;
  }

  function showConditions(s) {
    const c = s.conditions;
    if (!c) return;
    const pending = c.unacknowledged;
    const latest = c.events[0];
    const summary = pending
      ? `${pending} unacknowledged (${c.unacknowledged_faults} fault${c.unacknowledged_faults === 1 ? "" : "s"}) · ${c.total} since start` +
        (latest ? ` · last: ${latest.reason}` : "")
      : "";
    text("latched-summary", summary);
    show("latched-summary", pending > 0);
    const box = byId("latched");
    if (!box) return;
    box.hidden = c.total === 0;
    box.classList.toggle("pending", pending > 0);
    byId("ack").hidden = pending === 0 || !s.user;
    show("ack-login", pending > 0 && !s.user);
    if (pending === 0) text("latched-summary", `No unacknowledged faults or alarms · ${c.total} since start`);
    const list = byId("history");
    const key = c.events.map((e) => `${e.id}:${e.cleared_at_s}:${e.acknowledged_by}:${e.active ? Math.round(e.duration_ms / 1000) : ""}`).join(",");
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren(...c.events.map((e) => {
      const li = document.createElement("li");
      li.className = `ev-${e.kind}${e.active ? " active" : ""}${e.acknowledged_by ? " acked" : ""}`;
      const took = e.duration_ms < 1000 ? `${num(e.duration_ms, 0)} ms` : `${num(e.duration_ms / 1000, 1)} s`;
      const cleared = e.active ? "still active" : `cleared ${clockMs(e.cleared_at_s)}`;
      const acked = e.acknowledged_by ? ` · acknowledged by ${e.acknowledged_by}` : "";
      li.textContent = `${e.kind.toUpperCase()} ${clockMs(e.raised_at_s)} · ${e.reason} · ${e.active ? "for" : "lasted"} ${took} · ${cleared}${acked}`;
      return li;
    }));
  }

  function showStatus(s) {
    document.body.classList.remove("stale");
    const lineState = s.line_state || s.state;
    setState(lineState, `state-${lineState.toLowerCase()}`);
    show("fault", Boolean(s.fault_reason));
    text("fault", s.fault_reason ? `FAULT: ${s.fault_reason}` : "");
    const alarms = Object.values(s.alarms || {});
    show("alarm", alarms.length > 0);
    text("alarm", alarms.length ? `ALARM: ${alarms.join("; ")}` : "");
    text("model-name", `${s.model.name} ${s.model.version}`);
    const untested = s.model.selftest_probes === 0;
    show("untested", untested);
    text("untested", untested ? "UNTESTED MODEL: it has no self-test probes (see edge-inspect model set-meta --probe-image)" : "");
    text("threshold", num(s.threshold, 4));
    const c = s.counters;
    text("c-inspected", String(c.inspected));
    text("c-good", String(c.good));
    text("c-rejected", String(c.rejected));
    text("c-failsafe", String(c.failsafe));
    text("c-missed", String(c.missed_deadlines));
    text("c-not-actuated", String(c.reject_not_actuated));
    const notFired = byId("c-not-actuated");
    if (notFired) notFired.classList.toggle("alert", c.reject_not_actuated > 0);
    text("c-dropped", String(c.dropped));
    const by = Object.entries(c.dropped_by_consumer).filter(([, v]) => v > 0);
    text("c-dropped-detail", by.length ? by.map(([k, v]) => `${k.replace("_", " ")} ${v}`).join(" · ") : "none: every consumer kept up");
    const missed = byId("c-missed");
    if (missed) missed.classList.toggle("alert", c.missed_deadlines > 0);
    text("c-yield", c.yield_percent === null ? "–" : `${num(c.yield_percent, 1)} %`);
    text("c-reject-rate", percent(c.rejected, c.inspected));
    text("c-ppm", num(c.parts_per_minute, 0));
    text("l-p50", num(s.latency_ms.p50, 1));
    text("l-p99", num(s.latency_ms.p99, 1));
    text("l-max", num(s.latency_ms.max, 1));
    text("l-budget", num(s.latency_ms.budget, 0));
    const over = s.latency_ms.max !== null && s.latency_ms.max > s.latency_ms.budget;
    const maxEl = byId("l-max");
    if (maxEl) maxEl.classList.toggle("alert", over);
    showVerdict(s);
    showConditions(s);
    drawHeat(s.live);
  }

  function markStale() {
    // NO CONNECTION: nothing on the page is current any more; dim it and blank the rates.
    setState("NO CONNECTION", "state-offline");
    document.body.classList.add("stale");
    text("c-ppm", "–");
    text("verdict-text", "–");
    text("verdict-detail", "no connection: figures below are the last received");
  }

  async function pollStatus() {
    try {
      const s = await getJson(data.statusUrl);
      if (s) showStatus(s);
    } catch (error) {
      markStale();
    } finally {
      setTimeout(pollStatus, STATUS_EVERY_MS);
    }
  }

  const ackButton = byId("ack");
  if (ackButton) {
    ackButton.addEventListener("click", async () => {
      ackButton.disabled = true;
      try {
        const response = await fetch(data.ackUrl, {
          method: "POST", credentials: "same-origin", cache: "no-store",
          headers: { Accept: "application/json", "X-CSRF-Token": data.csrf },
        });
        if (response.status === 401) window.location.assign(data.loginUrl);
      } finally {
        ackButton.disabled = false;
      }
    });
  }

  // Heat map: each region's tile / patch scores drawn over the live image, blue (0) to red (1).
  const heat = byId("heat-overlay");
  const heatToggle = byId("heat-toggle");
  const HEAT_KEY = "edge-inspect-heat";
  if (heatToggle) {
    try { heatToggle.checked = window.localStorage.getItem(HEAT_KEY) === "on"; } catch (error) { /* off */ }
    heatToggle.addEventListener("change", () => {
      try { window.localStorage.setItem(HEAT_KEY, heatToggle.checked ? "on" : "off"); } catch (error) { /* */ }
      if (!heatToggle.checked) { heat.hidden = true; text("heat-note", ""); }
    });
  }
  function heatColour(v) {
    const t = Math.max(0, Math.min(1, v));
    const r = Math.round(255 * Math.min(1, 2 * t));
    const b = Math.round(255 * Math.min(1, 2 * (1 - t)));
    const g = Math.round(255 * (1 - Math.abs(2 * t - 1)));
    return `rgba(${r},${g},${b},${(0.12 + 0.5 * t).toFixed(2)})`;  // low scores stay see-through
  }
  function drawHeat(live) {
    if (!heat || !heatToggle || !heatToggle.checked) return;
    const picture = byId("live-image");
    if (heat.width !== picture.width) heat.width = picture.width;
    if (heat.height !== picture.height) heat.height = picture.height;
    const pen = heat.getContext("2d");
    pen.clearRect(0, 0, heat.width, heat.height);
    heat.hidden = false;
    const regions = live ? live.regions.filter((r) => r.tile_scores) : [];
    if (!live || regions.length === 0) {
      text("heat-note", live ? "this model gives no tile or patch scores" : "no frame yet");
      heat.dataset.cells = "0";
      return;
    }
    const sx = heat.width / live.frame_width_px;
    const sy = heat.height / live.frame_height_px;
    let cells = 0;
    for (const r of regions) {
      const rows = r.tile_scores.length;
      r.tile_scores.forEach((row, i) => row.forEach((v, j) => {
        const w = (r.width_px / row.length) * sx;
        const h = (r.height_px / rows) * sy;
        pen.fillStyle = heatColour(v);
        pen.fillRect(r.x_px * sx + j * w, r.y_px * sy + i * h, Math.ceil(w), Math.ceil(h));
        cells += 1;
      }));
    }
    heat.dataset.cells = String(cells);
    text("heat-note", `tile scores of frame ${live.frame_sequence} (up to a second behind the image)`);
  }

  // Trend chart: an SVG drawn by the appliance (matplotlib), refreshed every half minute.
  const trend = byId("trend");
  const TREND_EVERY_MS = 30000;
  function refreshTrend() {
    if (!trend) return;
    const span = (document.querySelector("input[name=span]:checked") || { value: "hour" }).value;
    const theme = document.documentElement.dataset.theme === "light" ? "light" : "dark";
    trend.src = `${data.trendUrl}?span=${span}&theme=${theme}&t=${Date.now()}`;
  }
  if (trend) {
    document.querySelectorAll("input[name=span]").forEach((el) => el.addEventListener("change", refreshTrend));
    document.addEventListener("themechange", refreshTrend);
    refreshTrend();
    setInterval(refreshTrend, TREND_EVERY_MS);
  }

  // Filmstrip: a fixed number of slots, built once, updated in place. A picture is shown only once it
  // has loaded; one that fails (gone from the appliance's ring) becomes a "no picture" box, never a
  // broken image.
  const strip = byId("filmstrip");
  const slots = [];
  for (let i = 0; strip && i < Number(strip.dataset.slots || 12); i += 1) {
    const li = document.createElement("li");
    li.className = "empty";
    const img = document.createElement("img");
    img.alt = "reject";
    img.hidden = true;
    const none = document.createElement("div");
    none.className = "no-image";
    none.textContent = "no image";
    const what = document.createElement("div");
    what.className = "what";
    const when = document.createElement("div");
    li.append(img, none, what, when);
    strip.append(li);
    const slot = { li, img, none, what, when, id: null, loader: null };
    slots.push(slot);
  }

  function loadPicture(slot, url) {
    slot.img.hidden = true;
    slot.none.hidden = false;
    slot.none.textContent = "loading…";
    const loader = new Image();
    slot.loader = loader;
    loader.onload = () => {
      if (slot.loader !== loader) return;
      slot.img.src = url;  // cached by now: shown whole, never half or broken
      slot.img.hidden = false;
      slot.none.hidden = true;
    };
    loader.onerror = () => {
      if (slot.loader !== loader) return;
      slot.img.removeAttribute("src");
      slot.none.textContent = "picture no longer kept";
    };
    loader.src = url;
  }

  function showRejects(rejects) {
    slots.forEach((slot, i) => {
      const r = rejects[i];
      if (!r) { slot.li.className = "empty"; slot.id = null; return; }
      if (slot.id === r.inspection_id) return;
      slot.id = r.inspection_id;
      slot.li.className = r.verdict === "failsafe" ? "failsafe" : "";
      if (r.thumbnail_url) loadPicture(slot, r.thumbnail_url);
      else {
        slot.loader = null;
        slot.img.hidden = true;
        slot.img.removeAttribute("src");
        slot.none.hidden = false;
        slot.none.textContent = "no image";
      }
      const why = r.verdict === "failsafe" ? `fail-safe: ${r.failsafe_reason}` : "defect";
      slot.what.textContent = r.defect_score === null ? why : `${why} ${num(r.defect_score, 4)}`;
      slot.when.textContent = `${clock(r.capture_wall_time_s)} · #${r.part_id}`;
    });
  }

  async function pollRejects() {
    try {
      const body = await getJson(data.rejectsUrl);
      if (body) showRejects(body.rejects);
    } catch (error) {
      // the status poll shows the connection problem
    } finally {
      setTimeout(pollRejects, REJECTS_EVERY_MS);
    }
  }

  // Live stream: the MJPEG stream read with fetch() and drawn on a canvas, only while the tab is visible.
  // (Chrome's own <img> MJPEG decoder is known to grow memory over hours; here each frame is decoded,
  // drawn and released, and the read buffer is bounded.)
  const canvas = byId("live-image");
  const painter = canvas ? canvas.getContext("2d") : null;
  const HEADER_END = [13, 10, 13, 10];
  const MAX_BUFFER_BYTES = 8 * 1024 * 1024;
  let streamAbort = null;
  let retryTimer = null;

  function indexOfHeaderEnd(bytes) {
    outer: for (let i = 0; i + 3 < bytes.length; i += 1) {
      for (let j = 0; j < 4; j += 1) if (bytes[i + j] !== HEADER_END[j]) continue outer;
      return i;
    }
    return -1;
  }

  async function paint(jpeg) {
    const bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
    try {
      if (canvas.width !== bitmap.width) canvas.width = bitmap.width;
      if (canvas.height !== bitmap.height) canvas.height = bitmap.height;
      painter.drawImage(bitmap, 0, 0);
      canvas.dataset.frames = String(Number(canvas.dataset.frames || 0) + 1);
    } finally {
      bitmap.close();
    }
  }

  async function readStream(signal) {
    const response = await fetch(data.streamUrl, { signal, cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) { window.location.assign(data.loginUrl); return; }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    const reader = response.body.getReader();
    let buffer = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream ended");
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
      for (;;) {
        const headerEnd = indexOfHeaderEnd(buffer);
        if (headerEnd < 0) break;
        const header = new TextDecoder().decode(buffer.subarray(0, headerEnd));
        const length = /Content-Length:\s*(\d+)/i.exec(header);
        if (!length) throw new Error("bad stream part");
        const start = headerEnd + 4;
        const end = start + Number(length[1]);
        if (buffer.length < end + 2) break;
        const jpeg = buffer.slice(start, end);
        buffer = buffer.slice(end + 2);
        await paint(jpeg);
      }
      if (buffer.length > MAX_BUFFER_BYTES) throw new Error("stream part too large");
    }
  }

  function connectStream() {
    dropStream();
    text("stream-note", "");
    const abort = new AbortController();
    streamAbort = abort;
    readStream(abort.signal).catch(() => {
      if (abort.signal.aborted) return;
      text("stream-note", "Live image unavailable, retrying…");
      retryTimer = setTimeout(connectStream, RETRY_STREAM_MS);
    });
  }
  function dropStream() {
    clearTimeout(retryTimer);
    if (streamAbort) streamAbort.abort();
    streamAbort = null;
  }
  if (canvas) {
    document.addEventListener("visibilitychange", () => (document.hidden ? dropStream() : connectStream()));
    if (!document.hidden) connectStream();
  }

  pollStatus();
  if (strip) pollRejects();
})();

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
    const wanted = `state ${cls}`;
    if (el.className !== wanted) el.className = wanted;
  }

  function showStatus(s) {
    setState(s.state, `state-${s.state.toLowerCase()}`);
    const fault = byId("fault");
    fault.hidden = !s.fault_reason;
    text("fault", s.fault_reason ? `FAULT: ${s.fault_reason}` : "");
    const alarms = Object.values(s.alarms || {});
    byId("alarm").hidden = alarms.length === 0;
    text("alarm", alarms.length ? `ALARM: ${alarms.join("; ")}` : "");
    text("model-name", `${s.model.name} ${s.model.version}`);
    const untested = s.model.selftest_probes === 0;
    byId("untested").hidden = !untested;
    text("untested", untested ? "UNTESTED MODEL: it has no self-test probes (see edge-inspect model set-meta --probe-image)" : "");
    text("threshold", num(s.threshold, 3));
    const c = s.counters;
    text("c-inspected", String(c.inspected));
    text("c-good", String(c.good));
    text("c-rejected", String(c.rejected));
    text("c-failsafe", String(c.failsafe));
    text("c-missed", String(c.missed_deadlines));
    text("c-not-actuated", String(c.reject_not_actuated));
    byId("c-not-actuated").classList.toggle("alert", c.reject_not_actuated > 0);
    text("c-dropped", String(c.dropped));
    byId("c-missed").classList.toggle("alert", c.missed_deadlines > 0);
    byId("c-dropped").title = Object.entries(c.dropped_by_consumer).map(([k, v]) => `${k}: ${v}`).join(", ");
    text("c-yield", c.yield_percent === null ? "–" : `${num(c.yield_percent, 1)} %`);
    text("c-ppm", num(c.parts_per_minute, 0));
    text("l-p50", num(s.latency_ms.p50, 1));
    text("l-p99", num(s.latency_ms.p99, 1));
    text("l-max", num(s.latency_ms.max, 1));
  }

  async function pollStatus() {
    try {
      const s = await getJson(data.statusUrl);
      if (s) showStatus(s);
    } catch (error) {
      setState("NO CONNECTION", "state-offline");  // never leave stale numbers looking live
    } finally {
      setTimeout(pollStatus, STATUS_EVERY_MS);
    }
  }

  // Filmstrip: a fixed number of slots, built once, updated in place.
  const strip = byId("filmstrip");
  const slots = [];
  for (let i = 0; i < Number(strip.dataset.slots || 12); i += 1) {
    const li = document.createElement("li");
    li.className = "empty";
    const img = document.createElement("img");
    img.alt = "reject";
    const none = document.createElement("div");
    none.className = "no-image";
    none.textContent = "no image";
    const what = document.createElement("div");
    what.className = "what";
    const when = document.createElement("div");
    li.append(img, none, what, when);
    strip.append(li);
    slots.push({ li, img, none, what, when, id: null });
  }

  function showRejects(rejects) {
    slots.forEach((slot, i) => {
      const r = rejects[i];
      if (!r) { slot.li.className = "empty"; slot.id = null; return; }
      if (slot.id === r.inspection_id) return;
      slot.id = r.inspection_id;
      slot.li.className = r.verdict === "failsafe" ? "failsafe" : "";
      slot.img.hidden = !r.thumbnail_url;
      slot.none.hidden = Boolean(r.thumbnail_url);
      if (r.thumbnail_url) slot.img.src = r.thumbnail_url;
      else slot.img.removeAttribute("src");
      const why = r.verdict === "failsafe" ? `fail-safe: ${r.failsafe_reason}` : "defect";
      slot.what.textContent = r.defect_score === null ? why : `${why} ${num(r.defect_score, 2)}`;
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
  const painter = canvas.getContext("2d");
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
  document.addEventListener("visibilitychange", () => (document.hidden ? dropStream() : connectStream()));
  if (!document.hidden) connectStream();

  pollStatus();
  pollRejects();
})();

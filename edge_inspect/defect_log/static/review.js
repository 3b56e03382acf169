// edge-inspect QA review: keyboard shortcuts for fast triage. Everything also works without script:
// the review buttons are plain form submits and the paging links plain links.
"use strict";
(() => {
  const byId = (id) => document.getElementById(id);
  const page = document.body.dataset.page;
  const help = byId("help");

  const follow = (id) => {
    const link = byId(id);
    if (link) window.location.assign(link.href);
  };
  // The help is an overlay fixed in the viewport: it opens where the user is, not at the page's end.
  const toggleHelp = () => { if (help) help.hidden = !help.hidden; };
  const toggle = byId("help-toggle");
  if (toggle) toggle.addEventListener("click", toggleHelp);

  // Grid: j/k (or arrows) move between cards, Enter opens, n/p change page.
  const cards = Array.from(document.querySelectorAll("#grid .card-link"));
  const moveFocus = (step) => {
    if (!cards.length) return;
    const at = cards.indexOf(document.activeElement);
    const next = at < 0 ? 0 : Math.min(Math.max(at + step, 0), cards.length - 1);
    cards[next].focus();
  };

  // Detail: d/f/e/g/u press the matching review button; j/k step through parts; / writes a note.
  const reviewKeys = new Map(
    Array.from(document.querySelectorAll("#review-form button[data-key]")).map((b) => [b.dataset.key, b]),
  );

  // Bulk selection on the grid: tick cards (x on the focused one, a for the page), label them together.
  const picks = Array.from(document.querySelectorAll("#grid input[name=part]"));
  const countSelected = () => {
    const n = picks.filter((p) => p.checked).length;
    const el = byId("selected-count");
    if (el) el.textContent = `${n} selected`;
    document.querySelectorAll("#bulk button[data-bulk]").forEach((b) => { b.disabled = n === 0; });
  };
  picks.forEach((p) => p.addEventListener("change", countSelected));
  const selectAll = (on) => { picks.forEach((p) => { p.checked = on; }); countSelected(); };
  const selectPage = byId("select-page");
  if (selectPage) selectPage.addEventListener("click", () => selectAll(true));
  const selectNone = byId("select-none");
  if (selectNone) selectNone.addEventListener("click", () => selectAll(false));
  if (picks.length) countSelected();
  const pickFocused = () => {
    const card = document.activeElement && document.activeElement.closest(".card");
    const box = card && card.querySelector("input[name=part]");
    if (box) { box.checked = !box.checked; countSelected(); }
  };
  const undo = byId("undo");
  const undoForm = byId("undo-form");
  if (undoForm) {
    const back = undoForm.querySelector("input[name=back]");
    if (back && !back.value && page === "grid") back.value = window.location.pathname + window.location.search;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && help && !help.hidden) { help.hidden = true; return; }
    const typing = event.target instanceof HTMLElement && event.target.matches("input, textarea, select");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    if (key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (key === "z" && undo) { undo.click(); event.preventDefault(); return; }
    if (page === "grid") {
      if (key === "j" || key === "ArrowRight" || key === "ArrowDown") { moveFocus(1); event.preventDefault(); }
      else if (key === "k" || key === "ArrowLeft" || key === "ArrowUp") { moveFocus(-1); event.preventDefault(); }
      else if (key === "x") { pickFocused(); event.preventDefault(); }
      else if (key === "a") { selectAll(true); event.preventDefault(); }
      else if (key === "n") follow("older");
      else if (key === "p") follow("newer");
    } else if (page === "detail") {
      if (reviewKeys.has(key)) { reviewKeys.get(key).click(); event.preventDefault(); }
      else if (key === "j" || key === "ArrowRight") follow("older");
      else if (key === "k" || key === "ArrowLeft") follow("newer");
      else if (key === "b") follow("back");
      else if (key === "/") { const note = byId("note"); if (note) { note.focus(); event.preventDefault(); } }
    }
  });

  if (page === "grid" && cards.length) cards[0].focus({ preventScroll: true });
})();

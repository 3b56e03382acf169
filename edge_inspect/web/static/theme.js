// Light (bright shop floor) or dark theme, remembered per screen; loaded in <head> so nothing flashes.
"use strict";
(() => {
  const KEY = "edge-inspect-theme";
  const root = document.documentElement;
  let stored = null;
  try { stored = window.localStorage.getItem(KEY); } catch (error) { /* storage off: default theme */ }
  const wanted = new URLSearchParams(window.location.search).get("theme") || stored;
  if (wanted === "light" || wanted === "dark") root.dataset.theme = wanted;
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", () => {
      root.dataset.theme = root.dataset.theme === "light" ? "dark" : "light";
      try { window.localStorage.setItem(KEY, root.dataset.theme); } catch (error) { /* not remembered */ }
      document.dispatchEvent(new CustomEvent("themechange"));
    });
  });
})();

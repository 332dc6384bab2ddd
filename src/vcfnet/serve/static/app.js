"use strict";
// Small page helpers (no inline script anywhere: the Content-Security-Policy forbids it).
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});

// After a form post the server sends the page back at the section it changed (#result,
// #report, ...): make that section focusable, so that the browser's own move to the fragment
// puts the keyboard focus there too (else it falls back to the page), the next Tab starts at the
// change and a screen reader reads it.
document.addEventListener("DOMContentLoaded", () => {
  const section = window.location.hash && document.getElementById(window.location.hash.slice(1));
  if (!section) return;
  if (!section.hasAttribute("tabindex")) section.setAttribute("tabindex", "-1");
  section.focus();
});

"use strict";
// Small page helpers (no inline script anywhere: the Content-Security-Policy forbids it).
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});

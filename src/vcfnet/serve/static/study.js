"use strict";
// Reader-study reading page: keys 1/2/3 pick the class of the next unanswered box, Enter submits;
// the time on the case goes with the read.
(function () {
  const form = document.getElementById("study-read");
  if (!form) return;
  const started = performance.now();
  const boxes = Array.from(form.querySelectorAll("fieldset.box-read"));
  form.addEventListener("submit", () => {
    form.elements.seconds.value = ((performance.now() - started) / 1000).toFixed(1);
  });
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.type !== "radio") return;
    if (target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
    if (["1", "2", "3"].includes(event.key)) {
      const box = boxes.find((b) => !b.querySelector("input[type=radio]:checked")) || boxes[boxes.length - 1];
      if (!box) return;
      const choice = box.querySelectorAll("input[type=radio]")[Number(event.key) - 1];
      if (choice) { choice.checked = true; event.preventDefault(); }
    } else if (event.key === "Enter" && !(target instanceof HTMLButtonElement)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();

"use strict";
// Suggest boxes: asks the vertebra localiser for the case's boxes, levels and Genant grades and
// hands them to the viewer (static/viewer.js) to accept, move, resize or delete; after the boxes
// are saved, asks the server to audit what was kept, changed, deleted or added.
(function () {
  const dataNode = document.getElementById("viewer-data");
  const root = document.querySelector(".viewer");
  const button = root && root.querySelector('[data-action="suggest"]');
  if (!dataNode || !button) return;
  const data = JSON.parse(dataNode.textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = root.querySelector(".status");
  let suggested = false;

  async function post(url) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf },
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : response.statusText);
    return body;
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Finding the vertebrae…";
    try {
      const { boxes } = await post(`/api/v1/cases/${data.id}/suggested-boxes`);
      const graded = boxes.filter((b) => b.grade > 0).map((b) => `${b.level} (grade ${b.grade})`);
      const message = `Suggested ${boxes.length} box(es)` +
        (graded.length ? `; height loss: ${graded.join(", ")}` : "; no height loss graded") +
        ". Delete the ones you do not want analysed, adjust the rest, then Save boxes.";
      root.dispatchEvent(new CustomEvent("vcfnet:set-boxes", { detail: { boxes, message } }));
      suggested = true;
    } catch (error) {
      status.textContent = `No suggestion: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });

  root.addEventListener("vcfnet:saved", async () => {
    if (!suggested) return;
    try { await post(`/api/v1/cases/${data.id}/suggested-boxes/review`); } catch (error) { /* audit best effort */ }
  });
})();

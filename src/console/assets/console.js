// The outboxd console's only script (served from /ui/assets/, never inline: the page's
// Content-Security-Policy allows scripts from the console itself only).
//
// 1. Action buttons ([data-action] with data-dialog) open their confirmation dialog instead
//    of going to the confirmation page (which is where they lead without this script).
// 2. Live sections ([data-live="<ms>"]) refresh themselves while they show unfinished
//    deliveries: the page is fetched again and the section swapped for its new version.
//    Everything in it was escaped by the server; nothing here builds HTML from text.
"use strict";

(function () {
  const UNFINISHED = '[data-state="pending"],[data-state="held"],[data-state="retrying"],[data-state="delivering"]';
  const LIVE_FOR_MS = 10 * 60 * 1000;

  function wireDialogs(root) {
    root.querySelectorAll("[data-action][data-dialog]").forEach((button) => {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.addEventListener("click", (event) => {
        const dialog = document.getElementById(button.dataset.dialog);
        if (!dialog || typeof dialog.showModal !== "function") return; // the page fallback
        event.preventDefault();
        dialog.showModal();
        const first = dialog.querySelector("input:not([type=hidden]),[data-confirm]");
        if (first) first.focus();
      });
    });
  }

  function live(section) {
    const every = Math.max(500, parseInt(section.dataset.live, 10) || 2000);
    const started = Date.now();
    // After an action the page shows what it did: keep refreshing a while even if nothing
    // looks unfinished yet.
    const grace = new URLSearchParams(location.search).has("done") ? 5000 : 0;
    async function tick() {
      if (Date.now() - started > LIVE_FOR_MS) return;
      const busy = section.querySelector(UNFINISHED) !== null || Date.now() - started < grace;
      const dialogOpen = document.querySelector("dialog[open]") !== null;
      if (busy && !dialogOpen && document.visibilityState !== "hidden") {
        try {
          const response = await fetch(location.href, {
            credentials: "same-origin",
            headers: { "x-requested-with": "outboxd-console" },
          });
          if (response.ok) {
            const doc = new DOMParser().parseFromString(await response.text(), "text/html");
            const fresh = doc.getElementById(section.id);
            if (fresh) {
              const adopted = document.importNode(fresh, true);
              section.replaceWith(adopted);
              section = adopted;
              wireDialogs(section);
            }
          }
        } catch (_) {
          // The next tick tries again.
        }
      }
      if (section.querySelector(UNFINISHED) !== null || Date.now() - started < grace) {
        setTimeout(tick, every);
      } else {
        section.dataset.settled = "1";
      }
    }
    setTimeout(tick, every);
  }

  document.addEventListener("DOMContentLoaded", () => {
    wireDialogs(document);
    document.querySelectorAll("[data-live][id]").forEach(live);
  });
})();

// Kassa dashboard: the little JavaScript it uses. No framework, no inline script (the page's
// Content-Security-Policy allows only this file).
"use strict";

// Forms with data-confirm ask before they are sent (refunds, cancellations, revocations).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// An element with data-live="<url>" follows a pending object: the URL answers
// {"status": "..."}; when the status differs from data-status, the main part of the page is
// fetched again and swapped in place (no reload, the scroll position kept).
function follow(element) {
  const url = element.getAttribute("data-live");
  const shown = element.getAttribute("data-status");
  const every = Number(element.getAttribute("data-every") || "1500");
  const tick = async () => {
    try {
      const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (answer.ok) {
        const body = await answer.json();
        if (body.status && body.status !== shown) {
          await refreshMain();
          return;
        }
      }
    } catch (e) {
      // The server restarts or the network blinks: try again at the next tick.
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

async function refreshMain() {
  const answer = await fetch(window.location.href, { credentials: "same-origin" });
  if (!answer.ok) {
    return;
  }
  const html = await answer.text();
  const next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
  const main = document.getElementById("main");
  if (next && main) {
    main.replaceWith(next);
    start(next);
  }
}

function start(root) {
  root.querySelectorAll("[data-live]").forEach(follow);
}

document.addEventListener("DOMContentLoaded", () => start(document));

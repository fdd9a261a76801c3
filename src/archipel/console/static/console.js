// The console's own script: conditional polling and the live status line. htmx does
// the rest (see docs/console.md). No inline script anywhere: the CSP forbids it.
"use strict";

// A polled fragment sends back the ETag of what it shows; the server answers 304
// while nothing changed and htmx (configured so) keeps the content as it is.
document.addEventListener("htmx:configRequest", (event) => {
  const tag = event.detail.elt.dataset.etag;
  if (tag) {
    event.detail.headers["If-None-Match"] = tag;
  }
});

document.addEventListener("htmx:afterRequest", (event) => {
  const xhr = event.detail.xhr;
  const tag = xhr && xhr.getResponseHeader("ETag");
  if (tag && event.detail.elt.isConnected) {
    event.detail.elt.dataset.etag = tag;
  }
  const status = document.getElementById("live-status");
  if (!status) {
    return;
  }
  if (xhr && (xhr.status === 0 || xhr.status >= 500)) {
    status.textContent = "Lost contact with the server; still trying. What you see may be out of date.";
    status.classList.add("shown");
  } else if (xhr && xhr.status >= 400) {
    status.textContent = `The server refused an update (HTTP ${xhr.status}); reload the page.`;
    status.classList.add("shown");
  } else if (status.classList.contains("shown")) {
    status.textContent = "";
    status.classList.remove("shown");
  }
});

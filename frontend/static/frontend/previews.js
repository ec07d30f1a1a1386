// Live progress of preview renders on a model page: polls each active render
// job and reloads the page once one has finished, so its grid appears.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var ACTIVE = { queued: true, running: true };

  function poll(box) {
    fetch(box.dataset.renderJobUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        if (!job) { return; }
        box.querySelector(".render-job-status").textContent = job.status;
        box.querySelector(".render-job-count").textContent = job.images.done + " / " + job.images.total;
        box.querySelector(".render-job-progress").value = job.progress;
        if (ACTIVE[job.status]) {
          window.setTimeout(function () { poll(box); }, POLL_MS);
        } else {
          window.location.reload();
        }
      })
      .catch(function () { window.setTimeout(function () { poll(box); }, POLL_MS * 4); });
  }

  document.querySelectorAll("[data-render-job-url]").forEach(poll);
})();

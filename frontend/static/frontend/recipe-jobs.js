// Live progress of merge jobs on a recipe page: polls the job API while a job
// is queued or running, and shows its output link when it succeeds.
(function () {
  "use strict";
  var POLL_MS = 700;
  var ACTIVE = { queued: true, running: true };

  function csrfToken() {
    var input = document.querySelector("#jobs input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function announce(text) {
    var live = document.getElementById("live-status");
    if (live) { live.textContent = text; }
  }

  function render(item, job) {
    var previous = item.dataset.status;
    item.dataset.status = job.status;
    var status = item.querySelector(".job-status");
    status.textContent = job.status;
    status.className = "badge job-status" + (job.status === "succeeded" ? " badge-ok" :
      (job.status === "failed" || job.status === "cancelled") ? " badge-danger" : " badge-warn");
    item.querySelector(".job-progress").value = job.progress;
    item.querySelector(".job-tensors").textContent = job.tensors.done + " / " + job.tensors.total + " tensors";
    item.querySelector(".job-error").textContent = job.error || "";
    var output = item.querySelector(".job-output");
    if (job.output && !output.querySelector("a")) {
      var link = document.createElement("a");
      link.href = job.output.url;
      link.textContent = "Output: " + job.output.modelName + " " + job.output.name;
      output.appendChild(link);
    }
    var cancel = item.querySelector(".job-cancel");
    if (cancel && !ACTIVE[job.status]) { cancel.remove(); }
    if (previous !== job.status) { announce("Job " + job.id + " is " + job.status); }
  }

  function poll(item) {
    fetch(item.dataset.jobUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        if (job) { render(item, job); }
        if (!job || ACTIVE[job.status]) { window.setTimeout(function () { poll(item); }, POLL_MS); }
      })
      .catch(function () { window.setTimeout(function () { poll(item); }, POLL_MS * 4); });
  }

  function cancel(item, button) {
    button.disabled = true;
    fetch(item.dataset.cancelUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" }
    }).then(function (response) { return response.json(); })
      .then(function (job) { if (job && job.status) { render(item, job); } })
      .catch(function () { button.disabled = false; });
  }

  document.querySelectorAll(".job[data-job-url]").forEach(function (item) {
    if (ACTIVE[item.dataset.status]) { poll(item); }
    var button = item.querySelector(".job-cancel");
    if (button) { button.addEventListener("click", function () { cancel(item, button); }); }
  });
})();

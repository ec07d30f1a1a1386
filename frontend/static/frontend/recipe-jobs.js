// Live progress of merge jobs on a recipe page: polls the job API while a job
// is queued or running, shows what it is doing with a progress bar, and when it
// succeeds shows its output (in the job, in the Outputs section and in the
// "queued" notice) without a reload.
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

  function size(n) {
    var units = [["GB", 1073741824], ["MB", 1048576], ["KB", 1024]];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][1]) { return (n / units[i][1]).toFixed(1) + " " + units[i][0]; }
    }
    return n + " B";
  }

  function count(n) { return n.toLocaleString("en-US"); }

  // The same sentences as the `job_summary` template filter.
  function summary(job) {
    if (job.status === "queued") { return "Waiting for a worker"; }
    if (job.status === "running") {
      if (job.phase === "merging" && job.tensors.total) {
        var text = "Merging: " + count(job.tensors.done) + " / " + count(job.tensors.total) + " tensors";
        if (job.bytes.total) { text += " · " + size(job.bytes.done) + " of " + size(job.bytes.total); }
        return text + " · " + Math.round(job.progress * 100) + "%";
      }
      if (job.phase === "storing") { return "Storing the output"; }
      if (job.phase === "merging") { return "Merging: reading the inputs"; }
      return "Fetching the input models";
    }
    if (job.status === "succeeded") {
      if (!job.tensors.total) { return "Done: this exact merge had already been published"; }
      var done = "Done: " + count(job.tensors.total) + " tensors";
      return job.engineSeconds === null ? done : done + " in " + job.engineSeconds.toFixed(1) + " s";
    }
    return job.status === "cancelled" ? "Cancelled" : "Failed";
  }

  function progressKnown(job) {
    if (job.status === "running") { return job.phase === "merging" && job.tensors.total > 0; }
    return job.status !== "queued";
  }

  function outputLink(job, label) {
    var link = document.createElement("a");
    link.href = job.output.url;
    link.textContent = label + job.output.modelName + " " + job.output.name;
    return link;
  }

  // The flash that said "Merge job N queued …" after Run now says how it ended.
  function updateNotice(job) {
    var prefix = "Merge job " + job.id + " ";
    document.querySelectorAll(".messages .notice").forEach(function (notice) {
      if (notice.dataset.jobId !== String(job.id) && notice.textContent.indexOf(prefix + "queued") !== 0) { return; }
      notice.dataset.jobId = String(job.id);
      var text = prefix + "for version " + job.recipeVersion;
      notice.classList.remove("notice-success", "notice-info", "notice-error", "notice-warning");
      if (job.status === "succeeded") {
        notice.classList.add("notice-success");
        notice.textContent = text + (job.output ? " succeeded: " : " succeeded.");
        if (job.output) { notice.appendChild(outputLink(job, "")); }
      } else if (job.status === "running") {
        notice.classList.add("notice-info");
        notice.textContent = text + " is running.";
      } else if (job.status === "queued") {
        notice.classList.add("notice-info");
        notice.textContent = text + " is queued.";
      } else {
        notice.classList.add(job.status === "failed" ? "notice-error" : "notice-warning");
        notice.textContent = text + " " + job.status + (job.error ? ": " + job.error : ".");
      }
    });
  }

  function refreshOutputs() {
    var body = document.querySelector(".outputs-body[data-outputs-url]");
    if (!body) { return; }
    fetch(body.dataset.outputsUrl, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { body.innerHTML = html; } })
      .catch(function () { /* the next finished job, or a reload, shows them */ });
  }

  function render(item, job) {
    var previous = item.dataset.status;
    var previousPhase = item.dataset.phase || "";
    item.dataset.status = job.status;
    item.dataset.phase = job.phase || "";
    var status = item.querySelector(".job-status");
    status.textContent = job.status;
    status.className = "badge job-status" + (job.status === "succeeded" ? " badge-ok" :
      (job.status === "failed" || job.status === "cancelled") ? " badge-danger" : " badge-warn");
    var bar = item.querySelector(".job-progress");
    if (progressKnown(job)) { bar.value = job.progress; } else { bar.removeAttribute("value"); }
    item.querySelector(".job-phase").textContent = summary(job);
    item.querySelector(".job-error").textContent = job.error || "";
    var output = item.querySelector(".job-output");
    if (job.output && !output.querySelector("a")) { output.appendChild(outputLink(job, "Output: ")); }
    var cancel = item.querySelector(".job-cancel");
    if (cancel && !ACTIVE[job.status]) { cancel.remove(); }
    updateNotice(job);
    if (previous !== job.status) {
      announce("Job " + job.id + " is " + job.status);
      if (job.status === "succeeded" && ACTIVE[previous]) { refreshOutputs(); }
    } else if (previousPhase !== (job.phase || "") && job.phase) {
      announce("Job " + job.id + ": " + summary(job));
    }
  }

  function poll(item) {
    fetch(item.dataset.jobUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.ok) { return response.json(); }
        // A server hiccup is worth another try; a job that is gone or not ours is not.
        return response.status >= 500 || response.status === 429 ? null : false;
      })
      .then(function (job) {
        if (job === false) { return; }
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

// Live progress of preview renders on a model page: polls each active render
// job and reloads the page once one has finished, so its grid appears. Also the
// searchable base-checkpoint pick of a LoRA's render form.
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

  // The LoRA form's base checkpoint pick: typing asks the API for matching checkpoints
  // (of the LoRA's base model, that the owner may use) and refills the list.
  function basePicker(box) {
    var search = box.querySelector("input[type=search]");
    var select = box.querySelector("select");
    var timer = null;
    var asked = 0;
    function refill(items) {
      var chosen = select.value;
      while (select.options.length > 1) { select.remove(1); }
      items.forEach(function (item) {
        var option = document.createElement("option");
        option.value = String(item.id);
        option.textContent = item.label;
        select.appendChild(option);
      });
      select.value = chosen;
      if (select.value !== chosen) { select.value = ""; }
    }
    search.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var ticket = ++asked;
        var url = box.dataset.basesUrl + "?query=" + encodeURIComponent(search.value.trim());
        fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (response) { return response.ok ? response.json() : null; })
          .then(function (body) { if (body && ticket === asked) { refill(body.items); } })
          .catch(function () {});
      }, 200);
    });
  }

  document.querySelectorAll("[data-bases-url]").forEach(basePicker);
})();

// Upload page: sends a model file to the hub with the upload protocol
// (POST /api/v1/uploads, PUT each part to its URL, POST …/complete).
//
// Parts go out in parallel behind one progress bar. The server is the memory
// of an upload: after a dropped connection or a reload, choosing the same file
// asks it which parts it already has and sends only the rest. The file's
// SHA-256 is computed in a Web Worker (this same script) while the parts are
// sent, and declared on completion so the hub can check every byte.
//
// The same script also drives the upload status page (it polls until the
// hub has checked the file) and the description preview of the form.
(function () {
  "use strict";

  // ---------------------------------------------------------------- SHA-256
  var K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  // Streaming SHA-256: WebCrypto only hashes a whole buffer, and a 2 GB file
  // must not be held in memory. Int32Arrays keep every value a small integer,
  // which is what lets the JIT keep this loop fast.
  function Sha256() {
    this.h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Int32Array(64);
    this.buf = new Uint8Array(64);
    this.bufLen = 0;
    this.bytes = 0;
  }
  Sha256.prototype.block = function (d, o) {
    var w = this.w, h = this.h, t;
    for (t = 0; t < 16; t++) {
      w[t] = (d[o + 4 * t] << 24) | (d[o + 4 * t + 1] << 16) | (d[o + 4 * t + 2] << 8) | d[o + 4 * t + 3];
    }
    for (t = 16; t < 64; t++) {
      var x = w[t - 15], y = w[t - 2];
      var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (((w[t - 16] + s0) | 0) + ((w[t - 7] + s1) | 0)) | 0;
    }
    var a = h[0], b = h[1], c = h[2], dd = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (t = 0; t < 64; t++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var t1 = (((((hh + S1) | 0) + ((e & f) ^ (~e & g))) | 0) + ((K[t] + w[t]) | 0)) | 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (dd + t1) | 0; dd = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + dd) | 0;
    h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
  };
  Sha256.prototype.update = function (data) {
    var i = 0, n = data.length;
    this.bytes += n;
    if (this.bufLen) {
      var take = Math.min(64 - this.bufLen, n);
      this.buf.set(data.subarray(0, take), this.bufLen);
      this.bufLen += take;
      i = take;
      if (this.bufLen < 64) return;
      this.block(this.buf, 0);
      this.bufLen = 0;
    }
    for (; i + 64 <= n; i += 64) this.block(data, i);
    if (i < n) {
      this.buf.set(data.subarray(i), 0);
      this.bufLen = n - i;
    }
  };
  Sha256.prototype.hex = function () {
    var bits = this.bytes * 8;
    var tail = new Uint8Array(this.bufLen < 56 ? 64 : 128);
    tail.set(this.buf.subarray(0, this.bufLen));
    tail[this.bufLen] = 0x80;
    var hi = Math.floor(bits / 4294967296), lo = bits >>> 0;
    var end = tail.length;
    tail[end - 8] = hi >>> 24; tail[end - 7] = hi >>> 16; tail[end - 6] = hi >>> 8; tail[end - 5] = hi;
    tail[end - 4] = lo >>> 24; tail[end - 3] = lo >>> 16; tail[end - 2] = lo >>> 8; tail[end - 1] = lo;
    for (var o = 0; o < end; o += 64) this.block(tail, o);
    var out = "";
    for (var k = 0; k < 8; k++) out += ("00000000" + (this.h[k] >>> 0).toString(16)).slice(-8);
    return out;
  };

  var HASH_CHUNK = 4 * 1024 * 1024;

  async function hashFile(file, onProgress) {
    var sha = new Sha256();
    for (var offset = 0; offset < file.size; offset += HASH_CHUNK) {
      var chunk = new Uint8Array(await file.slice(offset, offset + HASH_CHUNK).arrayBuffer());
      sha.update(chunk);
      if (onProgress) onProgress(Math.min(file.size, offset + HASH_CHUNK));
    }
    return sha.hex();
  }

  // This file doubles as the hashing worker: in a worker there is no document.
  if (typeof document === "undefined") {
    self.onmessage = function (event) {
      hashFile(event.data.file, function (done) { self.postMessage({ done: done }); })
        .then(function (hex) { self.postMessage({ sha256: hex }); })
        .catch(function (err) { self.postMessage({ error: String(err) }); });
    };
    return;
  }

  var SCRIPT_URL = document.currentScript ? document.currentScript.src : null;

  function hashInBackground(file, onProgress) {
    if (!window.Worker || !SCRIPT_URL) return hashFile(file, onProgress);
    return new Promise(function (resolve, reject) {
      var worker;
      try {
        worker = new Worker(SCRIPT_URL);
      } catch (e) {
        resolve(hashFile(file, onProgress));
        return;
      }
      worker.onmessage = function (event) {
        if (event.data.sha256) { worker.terminate(); resolve(event.data.sha256); }
        else if (event.data.error) { worker.terminate(); reject(new Error(event.data.error)); }
        else if (onProgress) onProgress(event.data.done);
      };
      worker.onerror = function (event) { worker.terminate(); reject(new Error(event.message || "hashing failed")); };
      worker.postMessage({ file: file });
    });
  }

  // ---------------------------------------------------------------- helpers
  var PARALLEL = 3;
  var MAX_RETRIES = 3;
  var EXTENSIONS = [".safetensors", ".ckpt", ".pt", ".pth", ".bin"];

  function $(id) { return document.getElementById(id); }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function announce(text) {
    var live = $("live-status");
    if (live) live.textContent = text;
  }

  // Binary units, as the server-rendered pages (Django's filesizeformat) show sizes.
  function formatBytes(n) {
    var units = ["bytes", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  function formatDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "";
    seconds = Math.ceil(seconds);
    if (seconds < 60) return seconds + " s";
    var m = Math.floor(seconds / 60), s = seconds % 60;
    if (m < 60) return m + " min " + (s ? s + " s" : "");
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function ApiError(message, status, code) {
    this.message = message; this.status = status; this.code = code;
  }

  async function api(method, url, body) {
    var response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    var data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) throw new ApiError(data.error || ("HTTP " + response.status), response.status, data.code);
    return data;
  }

  // ---------------------------------------------------------------- the upload page
  function UploadPage(root) {
    this.root = root;
    this.api = root.getAttribute("data-api");
    this.detailUrl = root.getAttribute("data-detail-url");
    this.modelId = root.getAttribute("data-model-id");
    this.input = $("upload-file");
    this.zone = $("drop-zone");
    this.busy = false;
    // Each attempt gets a generation; parts of an abandoned attempt stop as soon as they notice.
    this.generation = 0;
    this.reset();
    this.bind();
  }

  UploadPage.prototype.reset = function () {
    this.file = null;
    this.state = null;
    this.cancelled = false;
    this.generation += 1;
    this.xhrs = new Set();
    this.inflight = new Map();
    this.storedBytes = 0;
    this.sentThisSession = 0;
    this.samples = [];
    this.hashPromise = null;
  };

  UploadPage.prototype.bind = function () {
    var self = this;
    this.input.addEventListener("change", function () {
      if (self.input.files.length) self.start(self.input.files[0]);
    });
    ["dragenter", "dragover"].forEach(function (type) {
      self.zone.addEventListener(type, function (event) {
        event.preventDefault();
        if (!self.busy) self.zone.setAttribute("data-state", "over");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      self.zone.addEventListener(type, function (event) {
        event.preventDefault();
        self.zone.setAttribute("data-state", self.busy ? "busy" : "idle");
      });
    });
    this.zone.addEventListener("drop", function (event) {
      var files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length && !self.busy) self.start(files[0]);
    });
    // A file dropped next to the zone must not make the browser navigate away.
    window.addEventListener("dragover", function (event) { event.preventDefault(); });
    window.addEventListener("drop", function (event) { event.preventDefault(); });
    $("upload-cancel").addEventListener("click", function () { self.cancel(); });
    window.addEventListener("online", function () {
      if (self.interrupted && self.file) self.start(self.file);
    });
  };

  UploadPage.prototype.showError = function (message) {
    var box = $("upload-error");
    box.textContent = message;
    box.hidden = !message;
    if (message) announce(message);
  };

  UploadPage.prototype.storageKey = function (file) {
    return "mergeworks.upload:" + file.name + ":" + file.size + ":" + file.lastModified;
  };

  UploadPage.prototype.findResumable = function (file) {
    var id = null;
    try { id = window.localStorage.getItem(this.storageKey(file)); } catch (e) { id = null; }
    if (id) return id;
    // Another browser or a cleared storage: the server's list of unfinished uploads.
    var items = document.querySelectorAll("#unfinished [data-upload-id]");
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-filename") === file.name && Number(items[i].getAttribute("data-size")) === file.size) {
        return items[i].getAttribute("data-upload-id");
      }
    }
    return null;
  };

  UploadPage.prototype.start = async function (file) {
    if (this.busy) return;
    var lower = file.name.toLowerCase();
    if (!EXTENSIONS.some(function (ext) { return lower.endsWith(ext); })) {
      this.showError("Only " + EXTENSIONS.join(", ") + " files can be uploaded.");
      return;
    }
    this.reset();
    this.busy = true;
    this.interrupted = false;
    this.file = file;
    this.showError("");
    this.zone.setAttribute("data-state", "busy");
    $("upload-progress-area").hidden = false;
    $("upload-name").textContent = file.name;
    $("upload-size").textContent = formatBytes(file.size);
    $("upload-cancel").disabled = false;
    this.phase("Preparing…");
    try {
      this.state = await this.openUpload(file);
      if (this.cancelled) {
        // Cancelled while the upload was being opened: finish the cancel now that it has an id.
        await this.cancel();
        return;
      }
      try { window.localStorage.setItem(this.storageKey(file), this.state.id); } catch (e) { /* private mode */ }
      var self = this;
      this.hashPromise = hashInBackground(file, function (done) { self.hashed = done; });
      await this.sendParts();
      this.phase("Checking the file's SHA-256…");
      var sha256 = await this.hashPromise;
      this.phase("Finishing…");
      await api("POST", this.api + "/" + this.state.id + "/complete", { sha256: sha256 });
      try { window.localStorage.removeItem(this.storageKey(file)); } catch (e) { /* private mode */ }
      announce("Upload complete. The hub is checking the file.");
      window.location.assign(this.detailUrl.replace("00000000-0000-0000-0000-000000000000", this.state.id));
    } catch (err) {
      this.busy = false;
      if (this.cancelled) return;
      this.stopTransfers();
      this.interrupted = true;
      this.zone.setAttribute("data-state", "idle");
      this.phase("");
      var stored = this.state ? " Your progress is saved: choose the same file again (now or after a reload) to continue." : "";
      this.showError("The upload stopped: " + (err && err.message ? err.message : err) + "." + stored);
    }
  };

  UploadPage.prototype.openUpload = async function (file) {
    var id = this.findResumable(file);
    if (id) {
      try {
        var existing = await api("GET", this.api + "/" + id);
        if (existing.status === "receiving" && existing.size === file.size && existing.filename === file.name) {
          this.phase("Resuming: " + existing.parts.filter(function (p) { return p.stored; }).length + " of " +
            existing.partCount + " parts are already on the hub.");
          return existing;
        }
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 404) throw e;
      }
    }
    var body = { filename: file.name, size: file.size };
    if (this.modelId) body.modelId = Number(this.modelId);
    return api("POST", this.api, body);
  };

  UploadPage.prototype.phase = function (text) { $("upload-phase").textContent = text; };

  UploadPage.prototype.stopTransfers = function () {
    this.generation += 1;
    this.xhrs.forEach(function (x) { x.abort(); });
  };

  UploadPage.prototype.sendParts = async function () {
    var self = this;
    var state = this.state;
    this.urls = {};
    var pending = [];
    state.parts.forEach(function (p) {
      if (p.stored) self.storedBytes += p.size;
      else { pending.push(p); self.urls[p.number] = p.url; }
    });
    this.render();
    var already = state.parts.length - pending.length;
    this.sendingText = already
      ? "Sending the remaining " + pending.length + " of " + state.parts.length + " parts…"
      : "Sending…";
    this.phase(this.sendingText);
    var generation = this.generation;
    async function worker() {
      while (pending.length && !self.cancelled && generation === self.generation) {
        await self.sendPart(pending.shift(), generation);
      }
    }
    var workers = [];
    for (var i = 0; i < Math.min(PARALLEL, pending.length); i++) workers.push(worker());
    await Promise.all(workers);
    if (this.cancelled || generation !== this.generation) throw new Error("cancelled");
    this.render(true);
  };

  UploadPage.prototype.refreshUrls = async function () {
    var fresh = await api("GET", this.api + "/" + this.state.id);
    var self = this;
    fresh.parts.forEach(function (p) { self.urls[p.number] = p.url; });
    return fresh;
  };

  UploadPage.prototype.sendPart = async function (part, generation) {
    for (var attempt = 0; ; attempt++) {
      if (this.cancelled || generation !== this.generation) throw new Error("cancelled");
      try {
        if (!this.urls[part.number]) {
          var fresh = await this.refreshUrls();
          var now = fresh.parts[part.number - 1];
          if (now && now.stored) { this.storedBytes += part.size; this.render(); return; }
        }
        await this.putPart(part, this.urls[part.number]);
        this.inflight.delete(part.number);
        this.storedBytes += part.size;
        this.sentThisSession += part.size;
        this.render();
        return;
      } catch (err) {
        this.inflight.delete(part.number);
        this.render();
        if (this.cancelled || generation !== this.generation) throw new Error("cancelled");
        // An expired or refused URL: ask the hub for a fresh one.
        if (err.status === 403) this.urls[part.number] = null;
        if (attempt >= MAX_RETRIES) throw new Error("part " + part.number + " could not be sent (" + (err.message || "network error") + ")");
        this.phase("Connection problem; retrying part " + part.number + "…");
        await sleep(1000 * Math.pow(2, attempt));
        this.phase(this.sendingText || "");
      }
    }
  };

  UploadPage.prototype.putPart = function (part, url) {
    var self = this;
    var start = (part.number - 1) * this.state.partSize;
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      self.xhrs.add(xhr);
      xhr.open("PUT", url);
      xhr.upload.onprogress = function (event) {
        self.inflight.set(part.number, event.loaded);
        self.render();
      };
      xhr.onload = function () {
        self.xhrs.delete(xhr);
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else reject({ status: xhr.status, message: "the server answered " + xhr.status });
      };
      xhr.onerror = function () { self.xhrs.delete(xhr); reject({ status: 0, message: "network error" }); };
      xhr.onabort = function () { self.xhrs.delete(xhr); reject({ status: 0, message: "aborted" }); };
      xhr.send(self.file.slice(start, start + part.size));
    });
  };

  UploadPage.prototype.render = function (final) {
    var size = this.state ? this.state.size : 1;
    var inflight = 0;
    this.inflight.forEach(function (v) { inflight += v; });
    var done = Math.min(size, this.storedBytes + inflight);
    var percent = final ? 100 : Math.floor((done / size) * 100);
    var bar = $("upload-progress");
    bar.value = percent;
    bar.textContent = percent + "%";
    $("upload-percent").textContent = percent + "% · " + formatBytes(done) + " of " + formatBytes(size);
    // Speed over the last few seconds of this session (resumed bytes don't count).
    var now = performance.now();
    var sent = this.sentThisSession + inflight;
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    var first = this.samples[0];
    var speed = now > first[0] + 250 ? ((sent - first[1]) * 1000) / (now - first[0]) : 0;
    $("upload-speed").textContent = speed > 0 && !final ? formatBytes(speed) + "/s" : "";
    $("upload-eta").textContent = speed > 0 && !final ? "about " + formatDuration((size - done) / speed) + " left" : "";
  };

  UploadPage.prototype.cancel = async function () {
    this.cancelled = true;
    $("upload-cancel").disabled = true;
    if (!this.state) return;  // start() finishes the cancel once the upload exists
    this.stopTransfers();
    try {
      await api("DELETE", this.api + "/" + this.state.id);
    } catch (e) {
      this.showError("Could not cancel on the server: " + e.message);
    }
    if (this.file) {
      try { window.localStorage.removeItem(this.storageKey(this.file)); } catch (e) { /* private mode */ }
    }
    var row = document.querySelector('#unfinished [data-upload-id="' + this.state.id + '"]');
    if (row) row.remove();
    this.busy = false;
    this.input.value = "";
    $("upload-progress-area").hidden = true;
    this.zone.setAttribute("data-state", "idle");
    announce("Upload cancelled.");
    this.phase("");
  };

  // ---------------------------------------------------------------- status page and form
  function pollStatus(box) {
    var url = box.getAttribute("data-api");
    var known = box.getAttribute("data-status");
    var delay = 1000;
    async function tick() {
      try {
        var state = await api("GET", url);
        if (state.status !== known) { window.location.reload(); return; }
        delay = Math.min(delay * 1.2, 5000);
      } catch (e) {
        delay = 5000;
      }
      setTimeout(tick, delay);
    }
    setTimeout(tick, delay);
  }

  function setupPreview() {
    var button = $("description-preview-button");
    var field = document.querySelector("#upload-details textarea[name=description]");
    var target = $("description-preview");
    if (!button || !field || !target) return;
    button.hidden = false;
    button.addEventListener("click", async function () {
      var body = new FormData();
      body.append("text", field.value);
      var response = await fetch(target.getAttribute("data-url"), {
        method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() }, body: body
      });
      // The hub returns the description as the model page renders it: sanitised by nh3.
      target.innerHTML = response.ok ? await response.text() : "";
      $("description-preview-wrap").hidden = false;
    });
  }

  function setupTypeFields() {
    var type = document.querySelector("#upload-details select[name=type]");
    var checkpointOnly = document.querySelector('#upload-details [data-field="checkpoint_type"]');
    if (!type || !checkpointOnly) return;
    function sync() { checkpointOnly.hidden = type.value !== "Checkpoint"; }
    type.addEventListener("change", sync);
    sync();
  }

  var app = $("upload-app");
  if (app) new UploadPage(app);
  setupTypeFields();
  var status = $("upload-status");
  if (status && status.getAttribute("data-poll")) pollStatus(status);
  setupPreview();
})();

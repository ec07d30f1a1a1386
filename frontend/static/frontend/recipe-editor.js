// Recipe editor: line numbers with server-side validation errors on their
// lines, and weight sliders (one per block for block weights: 26 for SD1,
// 20 for SDXL) kept in sync with the JSON document in the textarea.
(function () {
  "use strict";
  var form = document.getElementById("recipe-form");
  if (!form) { return; }
  var textarea = document.getElementById("recipe-document");
  var gutter = form.querySelector(".editor-gutter");
  var errorsBox = document.getElementById("editor-errors");
  var panel = document.getElementById("weights-panel");
  var blockNames = JSON.parse(document.getElementById("block-names").textContent);
  var paramRanges = JSON.parse(document.getElementById("param-ranges").textContent);
  var validateUrl = form.dataset.validateUrl;
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var doc = null;
  var shape = "";
  var validateTimer = null;
  var validateSeq = 0;

  // --- text <-> document ---------------------------------------------------------------
  // Same layout as the server's document_text: indented JSON, lists of plain
  // values on one line (so 26 block weights take one line, not 26).
  function pretty(value, depth) {
    var pad = new Array(depth + 1).join("  ");
    var inner = pad + "  ";
    if (value && typeof value === "object" && !Array.isArray(value)) {
      var keys = Object.keys(value);
      if (!keys.length) { return "{}"; }
      return "{\n" + keys.map(function (k) {
        return inner + JSON.stringify(k) + ": " + pretty(value[k], depth + 1);
      }).join(",\n") + "\n" + pad + "}";
    }
    if (Array.isArray(value) && value.some(function (v) { return v && typeof v === "object"; })) {
      return "[\n" + value.map(function (v) { return inner + pretty(v, depth + 1); }).join(",\n") + "\n" + pad + "]";
    }
    if (Array.isArray(value)) {
      return "[" + value.map(function (v) { return JSON.stringify(v); }).join(", ") + "]";
    }
    return JSON.stringify(value);
  }

  function parseDoc() {
    try {
      var parsed = JSON.parse(textarea.value);
      return parsed && typeof parsed === "object" && Array.isArray(parsed.steps) ? parsed : null;
    } catch (e) {
      return null;
    }
  }

  function writeDoc() {
    var scroll = textarea.scrollTop;
    textarea.value = pretty(doc, 0) + "\n";
    textarea.scrollTop = scroll;
    renderGutter([]);
    scheduleValidate(250);
  }

  // --- gutter and errors ---------------------------------------------------------------
  function renderGutter(errors) {
    var lines = textarea.value.split("\n").length;
    var byLine = {};
    errors.forEach(function (e) {
      if (e.line) { byLine[e.line] = (byLine[e.line] ? byLine[e.line] + "; " : "") + e.message; }
    });
    var frag = document.createDocumentFragment();
    for (var n = 1; n <= lines; n++) {
      var span = document.createElement("span");
      span.dataset.line = String(n);
      span.textContent = String(n);
      if (byLine[n]) { span.className = "has-error"; span.title = byLine[n]; }
      frag.appendChild(span);
      frag.appendChild(document.createTextNode("\n"));
    }
    gutter.replaceChildren(frag);
    gutter.scrollTop = textarea.scrollTop;
  }

  function goToLine(line) {
    var lines = textarea.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
    textarea.focus();
    textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
    var lineHeight = parseFloat(window.getComputedStyle(textarea).lineHeight) || 20;
    textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  function renderErrors(errors) {
    errorsBox.replaceChildren();
    if (!errors.length) {
      var ok = document.createElement("p");
      ok.className = "notice notice-success";
      ok.textContent = "The recipe is valid.";
      errorsBox.appendChild(ok);
      return;
    }
    var head = document.createElement("p");
    head.className = "notice notice-error";
    head.textContent = "The recipe has " + errors.length + " problem" + (errors.length === 1 ? "" : "s") + ".";
    var list = document.createElement("ul");
    errors.forEach(function (e) {
      var li = document.createElement("li");
      li.dataset.line = e.line || "";
      if (e.line) {
        var link = document.createElement("a");
        link.href = "#recipe-document";
        link.className = "error-line";
        link.textContent = "Line " + e.line;
        link.addEventListener("click", function (event) { event.preventDefault(); goToLine(e.line); });
        li.appendChild(link);
        li.appendChild(document.createTextNode(": "));
      }
      if (e.path) {
        var code = document.createElement("code");
        code.textContent = e.path;
        li.appendChild(code);
        li.appendChild(document.createTextNode(": "));
      }
      li.appendChild(document.createTextNode(e.message));
      list.appendChild(li);
    });
    errorsBox.appendChild(head);
    errorsBox.appendChild(list);
  }

  function validate() {
    var seq = ++validateSeq;
    var text = textarea.value;
    return fetch(validateUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify({ document: text })
    }).then(function (response) { return response.json(); })
      .then(function (result) {
        if (seq !== validateSeq || text !== textarea.value) { return; }  // a newer edit is on its way
        var errors = result.errors || [];
        renderGutter(errors);
        renderErrors(errors);
        form.dataset.valid = errors.length ? "false" : "true";
      })
      .catch(function () { /* offline: the server checks again on save */ });
  }

  function scheduleValidate(delay) {
    window.clearTimeout(validateTimer);
    form.dataset.valid = "pending";
    validateTimer = window.setTimeout(validate, delay);
  }

  // --- weights panel -------------------------------------------------------------------
  function shapeOf(d) {
    if (!d) { return ""; }
    return JSON.stringify([d.architecture, d.steps.map(function (s) {
      var ranges = paramRanges[s.op] || {};
      return [s.id, s.op, Object.keys(ranges).map(function (p) {
        var v = s[p];
        return [p, v && typeof v === "object" && Array.isArray(v.blocks) ? v.blocks.length : typeof v];
      })];
    })]);
  }

  function numberInput(value, range, label) {
    var input = document.createElement("input");
    input.type = "number";
    input.step = "0.01";
    if (range.min !== null) { input.min = range.min; }
    if (range.max !== null) { input.max = range.max; }
    input.value = value;
    input.setAttribute("aria-label", label);
    input.className = "weight-number";
    return input;
  }

  function slider(value, range, label) {
    var input = document.createElement("input");
    input.type = "range";
    input.step = "0.01";
    input.min = range.min === null ? -4 : range.min;
    input.max = range.max === null ? 4 : range.max;
    input.value = value;
    input.setAttribute("aria-label", label + " slider");
    input.className = "weight-slider";
    return input;
  }

  function clean(v) {
    var n = Math.round(parseFloat(v) * 10000) / 10000;
    return isFinite(n) ? n : null;
  }

  // One row: a slider and a number box bound to doc.steps[i][param] (or its block j).
  function weightRow(stepIndex, param, blockIndex, labelText, range, value) {
    var step = doc.steps[stepIndex];
    var row = document.createElement("div");
    row.className = "weight-row";
    var name = document.createElement("span");
    name.className = "weight-name";
    name.textContent = labelText;
    var label = step.id + " " + param + (blockIndex === null ? "" : " " + labelText);
    var range_ = slider(value, range, label);
    var number = numberInput(value, range, label);
    function set(raw, source) {
      var v = clean(raw);
      if (v === null) { return; }
      if (blockIndex === null) { step[param] = v; } else { step[param].blocks[blockIndex] = v; }
      if (source !== range_) { range_.value = v; }
      if (source !== number) { number.value = v; }
      writeDoc();
    }
    range_.addEventListener("input", function () { set(range_.value, range_); });
    number.addEventListener("change", function () { set(number.value, number); });
    number.addEventListener("input", function () { if (number.value !== "" && !isNaN(parseFloat(number.value))) { set(number.value, number); } });
    row.appendChild(name);
    row.appendChild(range_);
    row.appendChild(number);
    row.dataset.step = step.id;
    row.dataset.param = param;
    if (blockIndex !== null) { row.dataset.block = labelText; }
    return row;
  }

  function renderPanel() {
    panel.replaceChildren();
    if (!doc) {
      var p = document.createElement("p");
      p.className = "notice notice-warning";
      p.textContent = "The sliders follow the document when it is JSON. Fix the JSON (or press Check to see what is wrong).";
      panel.appendChild(p);
      return;
    }
    var names = blockNames[doc.architecture] || null;
    // Single weights (a LoRA's strength, an alpha for all blocks) come first:
    // behind 26 block sliders they would sit below the fold.
    var singles = [], perBlock = [];
    doc.steps.forEach(function (step, i) {
      var ranges = paramRanges[step.op] || {};
      Object.keys(ranges).forEach(function (param) {
        var value = step[param];
        var range = ranges[param];
        var box = document.createElement("fieldset");
        box.className = "weight-group";
        var legend = document.createElement("legend");
        legend.textContent = step.id + " · " + step.op + " · " + param;
        box.appendChild(legend);
        var blocks = value && typeof value === "object" && Array.isArray(value.blocks);
        if (blocks) {
          box.classList.add("weight-group-blocks");
          value.blocks.forEach(function (v, j) {
            var label = names && names[j] ? names[j] : String(j);
            box.appendChild(weightRow(i, param, j, label, range, v));
          });
          var single = document.createElement("button");
          single.type = "button";
          single.className = "button button-small";
          single.textContent = "Use one value for all blocks";
          single.addEventListener("click", function () {
            step[param] = value.blocks.length ? value.blocks[0] : 0.5;
            writeDoc(); refresh(true);
          });
          box.appendChild(single);
        } else {
          if (value === undefined) { return; }  // left to its default
          box.appendChild(weightRow(i, param, null, "all", range, value));
          if (names) {
            var per = document.createElement("button");
            per.type = "button";
            per.className = "button button-small";
            per.textContent = "Per-block weights (" + names.length + ")";
            per.addEventListener("click", function () {
              step[param] = { blocks: names.map(function () { return step[param]; }) };
              writeDoc(); refresh(true);
            });
            box.appendChild(per);
          }
        }
        (blocks ? perBlock : singles).push(box);
      });
    });
    singles.concat(perBlock).forEach(function (box) { panel.appendChild(box); });
    if (!panel.children.length) {
      var none = document.createElement("p");
      none.className = "lede";
      none.textContent = "This recipe has no weights to adjust.";
      panel.appendChild(none);
    }
  }

  // Re-read the textarea; rebuild the panel only when the recipe's shape changed,
  // so typing a number does not steal focus from the slider being dragged.
  function refresh(force) {
    doc = parseDoc();
    var next = shapeOf(doc);
    if (force || next !== shape || !doc) {
      shape = next;
      renderPanel();
    } else {
      panel.querySelectorAll(".weight-row").forEach(function (row) {
        var step = doc.steps.find(function (s) { return s.id === row.dataset.step; });
        if (!step) { return; }
        var v = step[row.dataset.param];
        if (row.dataset.block !== undefined && v && v.blocks) {
          var idx = (blockNames[doc.architecture] || []).indexOf(row.dataset.block);
          v = v.blocks[idx >= 0 ? idx : parseInt(row.dataset.block, 10)];
        }
        if (typeof v === "number") {
          row.querySelector(".weight-slider").value = v;
          row.querySelector(".weight-number").value = v;
        }
      });
    }
  }

  var inputTimer = null;
  textarea.addEventListener("input", function () {
    renderGutter([]);
    window.clearTimeout(inputTimer);
    inputTimer = window.setTimeout(function () { refresh(false); }, 300);
    scheduleValidate(700);
  });
  textarea.addEventListener("scroll", function () { gutter.scrollTop = textarea.scrollTop; });
  document.getElementById("recipe-validate").addEventListener("click", function () { validate(); });
  errorsBox.addEventListener("click", function (event) {
    var link = event.target.closest(".error-line");
    if (!link) { return; }
    event.preventDefault();
    goToLine(parseInt(link.parentElement.dataset.line, 10));
  });
  refresh(true);
})();

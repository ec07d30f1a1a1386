// Gallery lightbox: the large image with its generation parameters and a copy button;
// "Show" reveals a blurred image for viewers who opted in. Without script, tiles link to image pages.
(function () {
  "use strict";
  var dataEl = document.getElementById("gallery-data");
  var dialog = document.getElementById("lightbox");
  if (!dataEl || !dialog) return;
  var items;
  try { items = JSON.parse(dataEl.textContent) || []; } catch (e) { return; }
  var image = document.getElementById("lightbox-image");
  var fields = document.getElementById("lightbox-fields");
  var raw = document.getElementById("lightbox-parameters");
  var none = dialog.querySelector(".lightbox-none");
  var full = document.getElementById("lightbox-full");
  var copy = dialog.querySelector("[data-copy-from='lightbox-parameters']");
  var current = -1;

  function visible(item) { return item && item.thumb && (item.shown || item.revealed); }

  function show(index) {
    var item = items[index];
    if (!visible(item)) return;
    current = index;
    image.src = item.large || item.thumb;
    image.alt = item.kind === "preview" ? "Preview image" : "Example image";
    full.href = item.full || item.large;
    fields.textContent = "";
    (item.fields || []).forEach(function (field) {
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = field[1];
      dd.textContent = field[2];
      dd.setAttribute("data-field", field[0]);
      fields.appendChild(dt);
      fields.appendChild(dd);
    });
    raw.textContent = item.parameters || "";
    raw.hidden = !item.parameters;
    none.hidden = !!(item.parameters || (item.fields && item.fields.length));
    copy.hidden = !item.parameters;
    if (!dialog.open) dialog.showModal();
  }

  function step(delta) {
    for (var i = 1; i <= items.length; i++) {
      var next = (current + delta * i + items.length * i) % items.length;
      if (visible(items[next])) { show(next); return; }
    }
  }

  document.querySelectorAll(".gallery-item").forEach(function (li) {
    var index = Number(li.getAttribute("data-index"));
    var item = items[index];
    var link = li.querySelector(".gallery-open");
    if (link) link.addEventListener("click", function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      show(index);
    });
    var reveal = li.querySelector(".gallery-reveal");
    if (reveal && item && item.thumb) reveal.addEventListener("click", function () {
      item.revealed = true;
      var tile = li.querySelector(".gallery-tile");
      var a = document.createElement("a");
      a.className = "gallery-tile gallery-open";
      a.href = item.page || item.full;
      var img = document.createElement("img");
      img.src = item.thumb;
      img.alt = "Example image";
      a.appendChild(img);
      a.addEventListener("click", function (event) { event.preventDefault(); show(index); });
      tile.replaceWith(a);
      li.classList.remove("is-hidden");
    });
  });

  dialog.addEventListener("click", function (event) {
    var action = event.target.getAttribute && event.target.getAttribute("data-lightbox");
    if (action === "close" || event.target === dialog) dialog.close();
    else if (action === "prev") step(-1);
    else if (action === "next") step(1);
  });
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "ArrowRight") step(1);
  });
  dialog.addEventListener("close", function () { image.removeAttribute("src"); });
})();

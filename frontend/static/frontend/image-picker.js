// Example images on the publish form: see the chosen files, reorder or drop them, rate each one and pick
// the cover before sending. The file input's FileList is rebuilt in the chosen order; the ratings and the
// cover's index travel in hidden fields. Without script every image gets the model's rating, in picked order.
(function () {
  "use strict";
  var input = document.querySelector("input[type=file][data-image-picker]");
  if (!input || typeof DataTransfer === "undefined") return;
  var form = input.form;
  var levelsField = form.querySelector("input[name=image_levels]");
  var coverField = form.querySelector("input[name=image_cover]");
  var modelLevel = form.querySelector("select[name=nsfw_level]");
  var LEVELS = [[1, "PG"], [2, "PG-13"], [4, "R"], [8, "X"]];
  var picks = [];
  var cover = 0;
  var list = document.createElement("ol");
  list.className = "image-picks";
  list.setAttribute("aria-label", "Chosen images");
  input.insertAdjacentElement("afterend", list);

  function sync() {
    var transfer = new DataTransfer();
    picks.forEach(function (pick) { transfer.items.add(pick.file); });
    input.files = transfer.files;
    levelsField.value = picks.map(function (pick) { return pick.level; }).join(",");
    coverField.value = picks.length ? String(Math.min(cover, picks.length - 1)) : "";
  }

  function button(label, text, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "button button-small";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  function render() {
    list.textContent = "";
    picks.forEach(function (pick, index) {
      var li = document.createElement("li");
      li.className = "image-pick";
      var img = document.createElement("img");
      img.src = pick.url;
      img.alt = "";
      var name = document.createElement("span");
      name.textContent = pick.file.name;
      var select = document.createElement("select");
      select.setAttribute("aria-label", "Rating of " + pick.file.name);
      LEVELS.forEach(function (level) {
        var option = document.createElement("option");
        option.value = level[0];
        option.textContent = level[1];
        option.selected = level[0] === pick.level;
        select.appendChild(option);
      });
      select.addEventListener("change", function () { pick.level = Number(select.value); sync(); });
      var coverLabel = document.createElement("label");
      var radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "image-picker-cover";
      radio.checked = index === cover;
      radio.addEventListener("change", function () { cover = index; sync(); });
      coverLabel.appendChild(radio);
      coverLabel.appendChild(document.createTextNode(" Cover"));
      li.append(img, name, select, coverLabel,
        button("Move " + pick.file.name + " up", "↑", function () { move(index, -1); }),
        button("Move " + pick.file.name + " down", "↓", function () { move(index, 1); }),
        button("Remove " + pick.file.name, "✕", function () {
          URL.revokeObjectURL(pick.url);
          picks.splice(index, 1);
          if (cover >= picks.length) cover = Math.max(0, picks.length - 1);
          render();
        }));
      list.appendChild(li);
    });
    sync();
  }

  function move(index, delta) {
    var target = index + delta;
    if (target < 0 || target >= picks.length) return;
    var pick = picks.splice(index, 1)[0];
    picks.splice(target, 0, pick);
    if (cover === index) cover = target;
    else if (cover === target) cover = index;
    render();
  }

  input.addEventListener("change", function () {
    var level = modelLevel ? Number(modelLevel.value) || 1 : 1;
    var chosen = Array.prototype.slice.call(input.files);
    // Picking again adds to the list rather than replacing it.
    chosen.forEach(function (file) {
      if (picks.some(function (p) { return p.file === file; })) return;
      picks.push({ file: file, level: level, url: URL.createObjectURL(file) });
    });
    render();
  });
})();

"""Labelled grids: one image with a header row of column labels and a column of row labels.

The seed layout has prompts as rows and seeds as columns; the alpha-sweep
layout (supermerger's XY plot) has prompt/seed pairs as rows and alphas as
columns. Labels are drawn with Pillow's built-in default font, so nothing is
downloaded and the pixels are the same on every machine with the same Pillow.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
PAD = 4

Box = tuple[int, int, int, int]


@lru_cache(maxsize=8)
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow >= 10.1 embeds a scalable font (Aileron) when FreeType is present; the
    # fixed-size bitmap font is the fallback otherwise.
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):
        return ImageFont.load_default()


@dataclass(frozen=True)
class GridLayout:
    rows: int
    cols: int
    cell_w: int
    cell_h: int
    label_w: int
    header_h: int
    font_size: int

    @classmethod
    def for_cells(cls, rows: int, cols: int, cell_w: int, cell_h: int) -> "GridLayout":
        font_size = max(10, min(28, cell_h // 14))
        line = font_size + 4
        return cls(
            rows=rows,
            cols=cols,
            cell_w=cell_w,
            cell_h=cell_h,
            label_w=max(120, min(320, cell_w)),
            header_h=2 * line + 2 * PAD,
            font_size=font_size,
        )

    @property
    def size(self) -> tuple[int, int]:
        return self.label_w + self.cols * self.cell_w, self.header_h + self.rows * self.cell_h

    def cell_box(self, row: int, col: int) -> Box:
        x, y = self.label_w + col * self.cell_w, self.header_h + row * self.cell_h
        return x, y, x + self.cell_w, y + self.cell_h

    def row_label_box(self, row: int) -> Box:
        y = self.header_h + row * self.cell_h
        return 0, y, self.label_w, y + self.cell_h

    def col_label_box(self, col: int) -> Box:
        x = self.label_w + col * self.cell_w
        return x, 0, x + self.cell_w, self.header_h


def _wrap(text: str, font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last line ends in an ellipsis when text is left over."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def fits(s: str) -> bool:
        return draw.textlength(s, font=font) <= width

    lines: list[str] = []
    words = " ".join(text.split()).split(" ")
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while current and not fits(current):  # a word wider than the box is broken by characters
            cut = len(current)
            while cut > 1 and not fits(current[:cut]):
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and not fits(last + "…"):
            last = last[:-1]
        lines[-1] = last + "…"
    return lines


def label_image(text: str, width: int, height: int, font_size: int) -> Image.Image:
    """The label tile for ``text`` exactly as ``compose_grid`` draws it into a box of this size."""
    tile = Image.new("RGB", (width, height), BACKGROUND)
    font = label_font(font_size)
    line_h = font_size + 4
    max_lines = max(1, (height - 2 * PAD) // line_h)
    lines = _wrap(text, font, width - 2 * PAD, max_lines)
    draw = ImageDraw.Draw(tile)
    top = max(PAD, (height - len(lines) * line_h) // 2)
    for i, line in enumerate(lines):
        w = draw.textlength(line, font=font)
        draw.text((max(PAD, (width - w) / 2), top + i * line_h), line, fill=INK, font=font)
    return tile


def compose_grid(
    cells: Sequence[Sequence[Image.Image]], row_labels: Sequence[str], col_labels: Sequence[str]
) -> tuple[Image.Image, GridLayout]:
    """Paste ``cells[row][col]`` into one labelled image. All cells must share one size."""
    rows, cols = len(cells), len(cells[0]) if cells else 0
    if rows == 0 or cols == 0:
        raise ValueError("a grid needs at least one cell")
    if len(row_labels) != rows or len(col_labels) != cols or any(len(r) != cols for r in cells):
        raise ValueError("labels and cells do not match the grid's shape")
    cell_w, cell_h = cells[0][0].size
    if any(img.size != (cell_w, cell_h) for r in cells for img in r):
        raise ValueError("grid cells differ in size")
    layout = GridLayout.for_cells(rows, cols, cell_w, cell_h)
    grid = Image.new("RGB", layout.size, BACKGROUND)
    for c, text in enumerate(col_labels):
        x0, y0, x1, y1 = layout.col_label_box(c)
        grid.paste(label_image(text, x1 - x0, y1 - y0, layout.font_size), (x0, y0))
    for r, text in enumerate(row_labels):
        x0, y0, x1, y1 = layout.row_label_box(r)
        grid.paste(label_image(text, x1 - x0, y1 - y0, layout.font_size), (x0, y0))
        for c, img in enumerate(cells[r]):
            grid.paste(img.convert("RGB"), layout.cell_box(r, c)[:2])
    return grid, layout

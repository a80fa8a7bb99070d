"""A self-contained HTML page for comparing restorations by eye (`evaluate --save-images`).

    entry = save_entry_images(out, name, blurred8, restored8, sharp8)   # once per image
    write_index_html(out, summary, rows, metric_names, entries)         # OUT/index.html

`save_entry_images` writes, under OUT/report/, the blurred, restored and sharp images as PNGs and
nearest-neighbour enlargements of the window where the restoration changed the image most
(`changed_region`). `write_index_html` writes OUT/index.html: a summary table (blurred, restored
and the gain per metric, plus the run's provenance), a per-image table sortable by any column
(click a header), and per image the three pictures side by side, a before/after slider and the
enlarged crops. The page uses no network: inline CSS and JS, images by relative links, so the
folder can be moved or opened from file://. Every file is written atomically (a temporary file
in the same folder, then `os.replace`).

This module imports only the standard library, numpy and PIL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import math
import os
import re
from typing import Any, Callable, Collection, Mapping, Sequence
from urllib.parse import quote

import numpy as np
from PIL import Image

from deblurgan_jax.utils import files
from deblurgan_jax.utils import images as images_io

REPORT_DIR = "report"
INDEX_NAME = "index.html"
METRIC_TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM (standard)",
    "cw_ssim": "CW-SSIM (paper's 'SSIM')",
    "lpips_alex": "LPIPS (AlexNet)",
    "lpips_vgg": "LPIPS (VGG)",
}
# Decimals shown per metric (by name prefix); others get DEFAULT_DECIMALS.
METRIC_DECIMALS = {"psnr": 2}
DEFAULT_DECIMALS = 4
_STEM_MAX = 100


@dataclasses.dataclass
class ReportEntry:
    """One image's pictures, paths relative to the output folder (POSIX separators). Photos
    without a sharp reference (the deblur command's report) have `sharp` and `zoom_sharp` None."""

    name: str
    blurred: str
    restored: str
    zoom_blurred: str
    zoom_restored: str
    zoom_box: tuple[int, int, int, int]  # (top, left, height, width) in image pixels
    sharp: str | None = None
    zoom_sharp: str | None = None


# --------------------------------------------------------------------------------------------
# Pictures.


def _as_image(a: Any, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 pixels, got {a.dtype}")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ValueError(f"{what}: expected (H, W) or (H, W, 3), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{what}: empty image of shape {a.shape}")
    return a


def changed_region(
    blurred8: np.ndarray, restored8: np.ndarray, size: int = 96
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the size x size window (clipped to the image) maximising
    the sum of |restored - blurred| over the window and the channels; ties go to the first
    window in row-major order (smallest top, then smallest left). O(H W) via an integral image.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    b = _as_image(blurred8, "blurred8")
    r = _as_image(restored8, "restored8")
    if b.shape != r.shape:
        raise ValueError(f"blurred8 {b.shape} and restored8 {r.shape} differ in shape")
    diff = np.abs(r.astype(np.int64) - b.astype(np.int64))
    if diff.ndim == 3:
        diff = diff.sum(axis=-1)
    height, width = diff.shape
    h, w = min(size, height), min(size, width)
    integral = np.zeros((height + 1, width + 1), np.int64)
    np.cumsum(np.cumsum(diff, axis=0), axis=1, out=integral[1:, 1:])
    sums = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)  # argmax: first maximum
    return int(top), int(left), int(h), int(w)


def safe_stem(name: str) -> str:
    """A file-name stem for an image name: readable (the name without its extension, anything
    but letters, digits, '.', '_' and '-' replaced by '_') plus 8 hex digits of the name's hash,
    so that names differing only in replaced characters or extensions stay apart."""
    base = os.path.splitext(name)[0]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:_STEM_MAX].strip("._")
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable or 'image'}-{digest}"


def save_entry_images(
    out_dir: str,
    name: str,
    blurred8: np.ndarray,
    restored8: np.ndarray,
    sharp8: np.ndarray | None,
    zoom: int = 96,
    zoom_scale: int = 3,
) -> ReportEntry:
    """Writes OUT/report/<stem>_{blurred,restored,sharp}.png and the enlarged crops
    <stem>_zoom_{blurred,restored,sharp}.png of the `zoom` x `zoom` window the restoration
    changed most (nearest neighbour, `zoom_scale` times); no sharp pictures when `sharp8` is
    None (photos without a reference). Returns paths relative to out_dir."""
    if zoom_scale < 1:
        raise ValueError(f"zoom_scale must be >= 1, got {zoom_scale}")
    images = {
        "blurred": _as_image(blurred8, "blurred8"),
        "restored": _as_image(restored8, "restored8"),
    }
    if sharp8 is not None:
        images["sharp"] = _as_image(sharp8, "sharp8")
    shapes = {k: v.shape for k, v in images.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"images differ in shape: {shapes}")
    box = changed_region(images["blurred"], images["restored"], zoom)
    top, left, h, w = box
    stem = safe_stem(name)
    os.makedirs(os.path.join(out_dir, REPORT_DIR), exist_ok=True)
    paths: dict[str, str] = {}
    for kind, image in images.items():
        crop = image[top : top + h, left : left + w]
        crop = np.repeat(np.repeat(crop, zoom_scale, axis=0), zoom_scale, axis=1)
        for key, file_name, pixels in (
            (kind, f"{stem}_{kind}.png", image),
            (f"zoom_{kind}", f"{stem}_zoom_{kind}.png", crop),
        ):
            rel = f"{REPORT_DIR}/{file_name}"
            images_io.save_png(os.path.join(out_dir, REPORT_DIR, file_name), pixels)
            paths[key] = rel
    return ReportEntry(name=name, zoom_box=box, **paths)


# --------------------------------------------------------------------------------------------
# The page.


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _decimals(metric: str) -> int:
    for prefix, d in METRIC_DECIMALS.items():
        if metric.startswith(prefix):
            return d
    return DEFAULT_DECIMALS


def format_number(x: Any, decimals: int = DEFAULT_DECIMALS, sign: bool = False) -> str:
    """Fixed decimals; 'n/a' for NaN or non-numbers, 'inf' / '-inf' for infinities; with `sign`
    a leading '+' on non-negative values (and never '-0.00')."""
    v = _float(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = f"{v:.{decimals}f}"
    if float(s) == 0:
        s = f"{0.0:.{decimals}f}"
    if sign and not s.startswith("-"):
        s = "+" + s
    return s


def _sort_value(x: Any) -> str:
    """The `data-v` a numeric cell sorts by: '' for NaN (sorted last), JS-readable otherwise."""
    v = _float(x)
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


def _gain(blurred: Any, restored: Any, lower_better: bool) -> float:
    b, r = _float(blurred), _float(restored)
    with np.errstate(invalid="ignore"):
        return float(b - r if lower_better else r - b)


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _url(path: str) -> str:
    """A relative path as an attribute value: POSIX separators, URL-quoted, HTML-escaped."""
    return _esc(quote(str(path).replace(os.sep, "/"), safe="/"))


def _num_cell(value: Any, decimals: int, sign: bool = False, css: str = "") -> str:
    text = format_number(value, decimals, sign)
    classes = ["num"] + ([css] if css else [])
    if sign:
        v = _float(value)
        if v > 0:
            classes.append("pos")
        elif v < 0:
            classes.append("neg")
    return f'<td class="{" ".join(classes)}" data-v="{_sort_value(value)}">{_esc(text)}</td>'


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " \u00b7 ".join(f"{k}: {_compact(v)}" for k, v in value.items())
    return json.dumps(value, default=str)


def _image_size(out_dir: str, rel: str) -> tuple[int, int] | None:
    try:
        with Image.open(os.path.join(out_dir, rel)) as im:
            return im.size  # (width, height)
    except (OSError, ValueError):
        return None


_CSS = """
:root { color-scheme: light dark; --fg: #1d1f21; --bg: #fff; --muted: #666; --line: #d6d6d6;
  --stripe: #f5f6f8; --head: #eceef2; --pos: #1a7f37; --neg: #c62828; --accent: #0b62c4; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e4e4e4; --bg: #16181b; --muted: #9a9a9a; --line: #3a3d42; --stripe: #1e2125;
    --head: #262a30; --pos: #5cc878; --neg: #ff7a7a; --accent: #6aa8ff; } }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; padding: 16px 24px 64px; max-width: 1600px; }
h1 { font-size: 1.5em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.2em; margin: 0 0 0.4em; word-break: break-all; }
a { color: var(--accent); }
.muted, .note { color: var(--muted); font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid var(--line); padding: 3px 8px; vertical-align: top; }
thead th { background: var(--head); }
tbody tr:nth-child(even) { background: var(--stripe); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pos { color: var(--pos); }
td.neg { color: var(--neg); }
td.name { word-break: break-all; max-width: 32em; }
td.prov { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85em;
  word-break: break-all; max-width: 70em; }
.scroll { overflow-x: auto; max-height: 80vh; overflow-y: auto; border: 1px solid var(--line); }
.scroll table { margin: 0; }
table.sortable thead th { position: sticky; top: 0; cursor: pointer; user-select: none;
  white-space: nowrap; }
table.sortable thead th::after { content: " \\2195"; color: var(--muted); }
table.sortable thead th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
table.sortable thead th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
section.image { border-top: 2px solid var(--line); padding: 16px 0 8px; }
.row3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 8px; }
@media (max-width: 800px) { .row3 { grid-template-columns: minmax(0, 1fr); } }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 0.9em; }
img { max-width: 100%; height: auto; display: block; }
.boxed { position: relative; display: inline-block; max-width: 100%; line-height: 0; }
.boxed .box { position: absolute; outline: 2px solid #ffd400; box-shadow: 0 0 0 3px rgba(0,0,0,.5);
  pointer-events: none; }
img.zoom { image-rendering: pixelated; image-rendering: crisp-edges; }
.cmp { position: relative; display: inline-block; max-width: 100%; line-height: 0; --pos: 50%;
  cursor: ew-resize; user-select: none; touch-action: none; }
.cmp img { -webkit-user-drag: none; }
.cmp img.before { position: absolute; top: 0; left: 0; width: 100%; height: 100%;
  clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.cmp .bar { position: absolute; top: 0; bottom: 0; left: var(--pos); width: 2px;
  margin-left: -1px; background: #fff; box-shadow: 0 0 3px #000; pointer-events: none; }
.cmp .tag { position: absolute; top: 6px; padding: 1px 6px; font-size: 12px; line-height: 1.4;
  background: rgba(0,0,0,.55); color: #fff; border-radius: 3px; pointer-events: none; }
.cmp .tag.l { left: 6px; } .cmp .tag.r { right: 6px; }
.cmp-range { display: block; width: 100%; max-width: 480px; margin: 4px 0 0; }
.details { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin-top: 8px; }
.details > div { min-width: 0; max-width: 100%; }
h3.note { font-weight: normal; margin: 12px 0 4px; }
"""

# Sorting: numeric columns compare data-v as numbers (NaN, i.e. '', always last), text columns
# with a numeric-aware collation; ties keep the original order (data-i). The slider sets the
# --pos custom property of its .cmp box from the range input or a pointer drag on the image.
_JS = """
(function () {
  'use strict';
  function num(s) { return (s === null || s === '') ? NaN : parseFloat(s); }
  function sortBy(table, col) {
    var heads = table.tHead.rows[0].cells, th = heads[col], body = table.tBodies[0];
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    var numeric = th.getAttribute('data-type') === 'number';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
      var c = 0;
      if (numeric) {
        var fx = num(x), fy = num(y), nx = isNaN(fx), ny = isNaN(fy);
        if (nx || ny) {
          c = (nx ? 1 : 0) - (ny ? 1 : 0);
          if (c !== 0) { return c; }
        } else {
          c = fx < fy ? -1 : (fx > fy ? 1 : 0);
        }
      } else {
        c = String(x).localeCompare(String(y), undefined, {numeric: true});
      }
      if (!asc) { c = -c; }
      return c || (num(a.getAttribute('data-i')) - num(b.getAttribute('data-i')));
    });
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute('aria-sort'); }
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    for (var j = 0; j < rows.length; j++) { body.appendChild(rows[j]); }
  }
  var tables = document.querySelectorAll('table.sortable');
  for (var t = 0; t < tables.length; t++) {
    (function (table) {
      var heads = table.tHead.rows[0].cells;
      for (var k = 0; k < heads.length; k++) {
        (function (col) {
          var th = heads[col];
          th.addEventListener('click', function () { sortBy(table, col); });
          th.addEventListener('keydown', function (e) {
            if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(table, col); }
          });
        })(k);
      }
    })(tables[t]);
  }
  var boxes = document.querySelectorAll('.cmp');
  for (var n = 0; n < boxes.length; n++) {
    (function (box) {
      var range = document.getElementById(box.getAttribute('data-range'));
      var dragging = false;
      function set(p) {
        p = Math.max(0, Math.min(100, p));
        box.style.setProperty('--pos', p + '%');
        if (range) { range.value = String(p); }
      }
      function at(e) {
        var r = box.getBoundingClientRect();
        if (r.width > 0) { set((e.clientX - r.left) / r.width * 100); }
      }
      if (range) { range.addEventListener('input', function () { set(parseFloat(range.value)); }); }
      box.addEventListener('pointerdown', function (e) {
        dragging = true;
        if (box.setPointerCapture) { box.setPointerCapture(e.pointerId); }
        at(e);
        e.preventDefault();
      });
      box.addEventListener('pointermove', function (e) { if (dragging) { at(e); } });
      box.addEventListener('pointerup', function () { dragging = false; });
      box.addEventListener('pointercancel', function () { dragging = false; });
    })(boxes[n]);
  }
})();
"""


def _metric_table(
    metric_names: Sequence[str],
    titles: Mapping[str, str],
    lower: Collection[str],
    get: Callable[[str], Any],
    css_class: str,
) -> list[str]:
    out = [
        f'<table class="{css_class}">',
        "<thead><tr><th>metric</th><th>blurred</th><th>restored</th><th>gain</th></tr></thead>",
        "<tbody>",
    ]
    for m in metric_names:
        d = _decimals(m)
        blurred, restored = get(f"{m}_blurred"), get(m)
        note = (
            ' <span class="note">(lower is better; gain = blurred \u2212 restored)</span>'
            if m in lower
            else ""
        )
        out.append(
            f'<tr data-metric="{_esc(m)}"><th scope="row">{_esc(titles.get(m, m))}{note}'
            f"</th>{_num_cell(blurred, d)}{_num_cell(restored, d)}"
            f"{_num_cell(_gain(blurred, restored, m in lower), d, sign=True)}</tr>"
        )
    out.append("</tbody></table>")
    return out


def _figure(
    out_dir: str,
    rel: str,
    caption: str,
    alt: str,
    box: tuple[int, int, int, int] | None = None,
    zoom: bool = False,
) -> str:
    size = _image_size(out_dir, rel)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    overlay = ""
    if box is not None and size and size[0] > 0 and size[1] > 0:
        top, left, h, w = box
        width, height = size
        overlay = (
            f'<span class="box" style="top:{100 * top / height:.4f}%;'
            f"left:{100 * left / width:.4f}%;width:{100 * w / width:.4f}%;"
            f'height:{100 * h / height:.4f}%"></span>'
        )
    css = ' class="zoom"' if zoom else ""
    return (
        f'<figure><a class="boxed" href="{_url(rel)}"><img{css} src="{_url(rel)}"{dims} '
        f'loading="lazy" alt="{_esc(alt)}">{overlay}</a>'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def render_index_html(
    out_dir: str,
    summary: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    metric_names: Sequence[str],
    entries: Sequence[ReportEntry],
    *,
    title: str = "deblurgan-jax evaluation",
    metric_titles: Mapping[str, str] | None = None,
    lower_is_better: Collection[str] = ("lpips_alex", "lpips_vgg"),
) -> str:
    """The text of index.html (see `write_index_html`). `out_dir` is only read, for the sizes of
    the saved pictures."""
    titles = dict(METRIC_TITLES)
    titles.update(metric_titles or {})
    lower = set(lower_is_better)
    metric_names = list(metric_names)
    anchors: dict[str, int] = {}
    for i, e in enumerate(entries):
        anchors.setdefault(e.name, i)
    by_name: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        by_name.setdefault(str(r.get("name", "")), r)

    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]

    # Summary.
    facts = []
    if "num_images" in summary:
        facts.append(f"{_esc(summary['num_images'])} images")
    if "seconds_per_image" in summary:
        facts.append(
            f"{_esc(format_number(summary['seconds_per_image'], 3))} s per image (restoration only)"
        )
    out.append('<section id="summary"><h2>Summary</h2>')
    if facts:
        out.append('<p class="muted">' + " \u00b7 ".join(facts) + "</p>")
    if metric_names:
        out += _metric_table(
            metric_names, titles, lower, lambda k: summary.get(k, math.nan), "summary"
        )
    provenance = [(k, v) for k, v in summary.items() if isinstance(v, (str, Mapping))]
    if provenance:
        out.append('<table class="provenance"><tbody>')
        for k, v in provenance:
            out.append(
                f'<tr><th scope="row">{_esc(k)}</th><td class="prov">{_esc(_compact(v))}</td></tr>'
            )
        out.append("</tbody></table>")
    out.append("</section>")

    # Per-image table.
    out.append('<section id="per-image"><h2>Per image</h2>')
    gain_note = (
        " Gain: restored \u2212 blurred (blurred \u2212 restored where lower is "
        "better), so positive is better."
        if metric_names
        else ""
    )
    out.append(
        '<p class="muted">Click a column header to sort (again to reverse); sort by # '
        f"for the original order.{gain_note} Image names link to their pictures.</p>"
    )
    out.append('<div class="scroll"><table class="sortable" id="per-image-table"><thead><tr>')
    heads = [
        '<th data-type="number" tabindex="0" scope="col">#</th>',
        '<th data-type="text" tabindex="0" scope="col">image</th>',
    ]
    for m in metric_names:
        t = _esc(titles.get(m, m))
        for part in ("blurred", "restored", "gain"):
            heads.append(f'<th data-type="number" tabindex="0" scope="col">{t} {part}</th>')
    heads.append('<th data-type="number" tabindex="0" scope="col">seconds</th>')
    out.append("".join(heads) + "</tr></thead><tbody>")
    for i, r in enumerate(rows):
        name = str(r.get("name", ""))
        label = _esc(name)
        if name in anchors:
            label = f'<a href="#img-{anchors[name]}">{label}</a>'
        cells = [
            f'<td class="num" data-v="{i}">{i + 1}</td>',
            f'<td class="name" data-v="{_esc(name)}">{label}</td>',
        ]
        for m in metric_names:
            d = _decimals(m)
            b, rs = r.get(f"{m}_blurred", math.nan), r.get(m, math.nan)
            cells += [
                _num_cell(b, d),
                _num_cell(rs, d),
                _num_cell(_gain(b, rs, m in lower), d, sign=True),
            ]
        cells.append(_num_cell(r.get("seconds", math.nan), 3))
        out.append(f'<tr data-i="{i}">{"".join(cells)}</tr>')
    out.append("</tbody></table></div></section>")

    # Per image.
    for i, e in enumerate(entries):
        top, left, h, w = (int(v) for v in e.zoom_box)
        box = (top, left, h, w)
        out.append(f'<section class="image" id="img-{i}">')
        out.append(f'<h2>{_esc(e.name)} <a class="note" href="#per-image">\u2191 table</a></h2>')
        out.append('<div class="row3">')
        for rel, caption in ((e.blurred, "blurred"), (e.restored, "restored"), (e.sharp, "sharp")):
            if rel is not None:
                out.append(_figure(out_dir, rel, caption, f"{e.name} ({caption})", box))
        out.append("</div>")
        out.append('<div class="details"><div>')
        out.append(
            '<h3 class="note">before / after: drag on the image or use the slider '
            "(left: blurred, right: restored)</h3>"
        )
        range_id = f"cmp-range-{i}"
        out.append(
            f'<div class="cmp" data-range="{range_id}">'
            f'<img class="after" src="{_url(e.restored)}" loading="lazy" '
            f'draggable="false" alt="{_esc(e.name)} (restored)">'
            f'<img class="before" src="{_url(e.blurred)}" loading="lazy" '
            f'draggable="false" alt="{_esc(e.name)} (blurred)">'
            '<span class="bar"></span><span class="tag l">blurred</span>'
            '<span class="tag r">restored</span></div>'
        )
        out.append(
            f'<input class="cmp-range" id="{range_id}" type="range" min="0" max="100" '
            f'step="0.1" value="50" aria-label="before/after position">'
        )
        out.append("</div><div>")
        out.append(f'<h3 class="note">{"metrics" if metric_names else "details"}</h3>')
        row = by_name.get(e.name)
        if row is None:
            out.append('<p class="muted">no metrics for this image</p>')
        elif not metric_names:
            if "size" in row:
                out.append(f'<p class="muted">{_esc(row["size"])} px</p>')
            if "seconds" in row:
                out.append(f'<p class="muted">{_esc(format_number(row["seconds"], 3))} s</p>')
        else:

            def value(key: str, row: Mapping[str, Any] = row) -> Any:
                return row.get(key, math.nan)

            out += _metric_table(metric_names, titles, lower, value, "image-metrics")
            if "seconds" in row:
                out.append(f'<p class="muted">{_esc(format_number(row["seconds"], 3))} s</p>')
        out.append("</div></div>")
        out.append(
            f'<h3 class="note">where the restoration changed the image most: top {top}, '
            f"left {left}, {h} \u00d7 {w} px (yellow box above; enlarged, nearest "
            "neighbour)</h3>"
        )
        out.append('<div class="row3">')
        for rel, caption in (
            (e.zoom_blurred, "blurred"),
            (e.zoom_restored, "restored"),
            (e.zoom_sharp, "sharp"),
        ):
            if rel is None:
                continue
            out.append(
                _figure(
                    out_dir,
                    rel,
                    f"{caption}, rows {top}\u2013{top + h - 1}, columns {left}\u2013{left + w - 1}",
                    f"{e.name} ({caption}, crop)",
                    zoom=True,
                )
            )
        out.append("</div></section>")

    out += [f"<script>{_JS}</script>", "</body>", "</html>", ""]
    return "\n".join(out)


def write_index_html(
    out_dir: str,
    summary: dict,
    rows: list[dict],
    metric_names: Sequence[str],
    entries: Sequence[ReportEntry],
    *,
    title: str = "deblurgan-jax evaluation",
    metric_titles: Mapping[str, str] | None = None,
    lower_is_better: Collection[str] = ("lpips_alex", "lpips_vgg"),
) -> str:
    """Writes OUT/index.html atomically and returns its path.

    The page: a summary table (per metric: blurred, restored, gain = restored - blurred, or
    blurred - restored for `lower_is_better` metrics, so positive is better), the provenance
    entries of `summary` that are dicts or strings, a per-image table of `rows` (each {'name',
    '<m>_blurred', '<m>', 'seconds'}) sortable by any column, and a section `id="img-<i>"` per
    entry (blurred | restored | sharp, a before/after slider, the enlarged crops of
    `zoom_box`, the image's metrics). Rows whose name has no entry are listed without a link.
    NaN shows as 'n/a', infinities as 'inf'.
    """
    text = render_index_html(
        out_dir,
        summary,
        rows,
        metric_names,
        entries,
        title=title,
        metric_titles=metric_titles,
        lower_is_better=lower_is_better,
    )
    os.makedirs(out_dir or ".", exist_ok=True)
    path = os.path.join(out_dir, INDEX_NAME)
    data = text.encode("utf-8")
    files.write_atomic(path, data)
    return path

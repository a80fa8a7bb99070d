"""The HTML comparison report: the changed-region search against brute force, the saved pictures
read back, and index.html parsed with the standard library's HTMLParser (links resolve, nothing
from the network, escaping and URL quoting, numbers as formatted, sorting run under node)."""

import ast
import glob
import html.parser
import json
import math
import os
import shutil
import subprocess
import sys
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import scipy.ndimage
import skimage.data
from PIL import Image

from deblurgan_jax.evaluation import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRICKY = "GOPR0384_11_00/we<ird> & \"q\" 's' #1 100%.png"


# --------------------------------------------------------------------------------------------
# Independent references.


def brute_force_region(blurred, restored, size):
    """First (row-major) window of the largest sum of |restored - blurred|, by explicit loops."""
    d = np.abs(restored.astype(np.int64) - blurred.astype(np.int64))
    if d.ndim == 3:
        d = d.sum(-1)
    height, width = d.shape
    h, w = min(size, height), min(size, width)
    best, where = -1, None
    for top in range(height - h + 1):
        for left in range(width - w + 1):
            s = int(d[top : top + h, left : left + w].sum())
            if s > best:
                best, where = s, (top, left, h, w)
    return where


def windowed_region(blurred, restored, size):
    """The same by summing every window's view (numpy's sliding windows), for larger images."""
    d = np.abs(restored.astype(np.int64) - blurred.astype(np.int64)).sum(-1)
    h, w = min(size, d.shape[0]), min(size, d.shape[1])
    sums = np.lib.stride_tricks.sliding_window_view(d, (h, w)).sum(axis=(-2, -1))
    flat = int(np.flatnonzero(sums == sums.max())[0])
    return flat // sums.shape[1], flat % sums.shape[1], h, w


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self, tag=None):
        for c in self.children:
            if isinstance(c, Node):
                if tag is None or c.tag == tag:
                    yield c
                yield from c.iter(tag)

    def find(self, tag, **attrs):
        for n in self.iter(tag):
            if all(n.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()):
                return n
        return None


class TreeParser(html.parser.HTMLParser):
    VOID = {"img", "input", "meta", "br", "link", "hr", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {})
        self.raw_attrs = []  # (tag, name, value) exactly as written, before unescaping
        self.errors = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, attrs, self.current))

    def handle_endtag(self, tag):
        n = self.current
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is self.root:
            self.errors.append(f"unmatched </{tag}>")
            return
        self.current = n.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    p = TreeParser()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors
    assert p.current is p.root, f"unclosed <{p.current.tag}>"
    return text, p.root


# --------------------------------------------------------------------------------------------
# changed_region.


def test_changed_region_finds_a_known_square():
    rng = np.random.default_rng(0)
    blurred = rng.integers(0, 200, (120, 140, 3), dtype=np.uint8)
    restored = blurred.copy()
    restored[37:47, 51:61] += 50  # no overflow: values stay below 256
    top, left, h, w = report.changed_region(blurred, restored, 16)
    assert (h, w) == (16, 16)
    assert top <= 37 and top + h >= 47 and left <= 51 and left + w >= 61
    # Every window holding the square ties; the first in row-major order wins.
    assert (top, left) == (47 - 16, 61 - 16)
    assert report.changed_region(blurred, restored, 16) == brute_force_region(blurred, restored, 16)


@pytest.mark.parametrize(
    "shape,size",
    [
        ((23, 31, 3), 7),
        ((23, 31, 3), 1),
        ((12, 40, 3), 16),
        ((40, 12), 16),
        ((9, 9, 3), 9),
        ((17, 5), 3),
    ],
)
def test_changed_region_equals_brute_force(shape, size):
    rng = np.random.default_rng(sum(shape) * 31 + size)
    blurred = rng.integers(0, 256, shape, dtype=np.uint8)
    restored = rng.integers(0, 256, shape, dtype=np.uint8)
    assert report.changed_region(blurred, restored, size) == brute_force_region(
        blurred, restored, size
    )


def test_changed_region_uses_absolute_differences_without_uint8_wraparound():
    blurred = np.full((30, 30, 3), 100, np.uint8)
    restored = blurred.copy()
    blurred[2:6, 2:6] = 250
    restored[2:6, 2:6] = 0  # |0 - 250| = 250; in uint8 arithmetic 0 - 250 wraps to 6
    restored[20:24, 20:24] = 130  # +30
    assert report.changed_region(blurred, restored, 4) == (2, 2, 4, 4)
    assert brute_force_region(blurred, restored, 4) == (2, 2, 4, 4)


def test_changed_region_ties_go_to_the_top_left():
    blurred = np.zeros((20, 30, 3), np.uint8)
    restored = blurred.copy()
    restored[12:14, 3:5] = 9
    restored[4:6, 20:22] = 9  # same total, higher up: wins although further right
    assert report.changed_region(blurred, restored, 2) == (4, 20, 2, 2)
    assert brute_force_region(blurred, restored, 2) == (4, 20, 2, 2)


def test_changed_region_flat_small_single_pixel_and_grayscale():
    flat = np.full((50, 70, 3), 128, np.uint8)
    assert report.changed_region(flat, flat.copy(), 16) == (0, 0, 16, 16)
    assert report.changed_region(flat, flat.copy(), 96) == (0, 0, 50, 70)
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    assert report.changed_region(small, 255 - small, 96) == (0, 0, 8, 12)
    one = np.zeros((1, 1, 3), np.uint8)
    assert report.changed_region(one, one + 5, 96) == (0, 0, 1, 1)
    assert report.changed_region(one[..., 0], one[..., 0], 3) == (0, 0, 1, 1)
    gray_b = rng.integers(0, 256, (21, 34), dtype=np.uint8)
    gray_r = rng.integers(0, 256, (21, 34), dtype=np.uint8)
    expected = brute_force_region(gray_b, gray_r, 6)
    assert report.changed_region(gray_b, gray_r, 6) == expected
    # Three equal channels: the same window as the grayscale image.
    rgb = lambda a: np.repeat(a[..., None], 3, -1)  # noqa: E731
    assert report.changed_region(rgb(gray_b), rgb(gray_r), 6) == expected
    with pytest.raises(ValueError):
        report.changed_region(gray_b, rgb(gray_r), 6)


# --------------------------------------------------------------------------------------------
# save_entry_images.


def astronaut_triple():
    """A real photo crop: sharp, a 5x5 box blur of it, and a 'restoration' that puts the sharp
    pixels back inside one rectangle (rows 20..51, columns 60..99)."""
    sharp = np.ascontiguousarray(skimage.data.astronaut()[40:136, 160:288])  # 96 x 128
    blurred = scipy.ndimage.uniform_filter(sharp, size=(5, 5, 1), mode="nearest")
    restored = blurred.copy()
    restored[20:52, 60:100] = sharp[20:52, 60:100]
    return blurred, restored, sharp


def read_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im)


def test_save_entry_images_writes_what_it_returns(tmp_path):
    blurred, restored, sharp = astronaut_triple()
    out = str(tmp_path)
    entry = report.save_entry_images(
        out, "GOPR0384_11_00/000001.png", blurred, restored, sharp, zoom=32, zoom_scale=3
    )
    assert entry.name == "GOPR0384_11_00/000001.png"
    box = windowed_region(blurred, restored, 32)
    assert entry.zoom_box == box
    top, left, h, w = box
    assert top >= 20 - 32 and top + h <= 52 + 32 and left >= 60 - 32 and left + w <= 100 + 32
    for kind, image in (("blurred", blurred), ("restored", restored), ("sharp", sharp)):
        rel = getattr(entry, kind)
        zoom_rel = getattr(entry, f"zoom_{kind}")
        for r in (rel, zoom_rel):
            assert not os.path.isabs(r) and "\\" not in r and r.startswith("report/"), r
            assert "/" not in r[len("report/") :], r
        assert os.path.basename(rel).endswith(f"_{kind}.png")
        assert os.path.basename(zoom_rel).endswith(f"_zoom_{kind}.png")
        np.testing.assert_array_equal(read_png(os.path.join(out, rel)), image)
        crop = image[top : top + h, left : left + w]
        enlarged = np.kron(crop, np.ones((3, 3, 1), np.uint8))  # nearest neighbour, x3
        np.testing.assert_array_equal(read_png(os.path.join(out, zoom_rel)), enlarged)
    assert os.path.basename(entry.blurred).startswith("GOPR0384_11_00_000001")
    assert sorted(os.listdir(out)) == ["report"]
    assert len(os.listdir(os.path.join(out, "report"))) == 6
    assert not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    assert not glob.glob(os.path.join(out, "**", ".*"), recursive=True)


def test_save_entry_images_grayscale_and_tiny(tmp_path):
    rng = np.random.default_rng(2)
    b, r, s = (rng.integers(0, 256, (5, 7), dtype=np.uint8) for _ in range(3))
    entry = report.save_entry_images(str(tmp_path), "tiny.png", b, r, s, zoom=96, zoom_scale=2)
    assert entry.zoom_box == (0, 0, 5, 7)
    np.testing.assert_array_equal(read_png(tmp_path / entry.restored), r)
    zoomed = read_png(tmp_path / entry.zoom_sharp)
    assert zoomed.shape == (10, 14)
    np.testing.assert_array_equal(zoomed[::2, ::2], s)
    np.testing.assert_array_equal(zoomed[1::2, 1::2], s)
    with pytest.raises(ValueError):
        report.save_entry_images(str(tmp_path), "x", b, r, s[:4])
    with pytest.raises(ValueError):
        report.save_entry_images(str(tmp_path), "x", b.astype(np.float32), r, s)


def test_stems_are_safe_readable_and_unique(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    names = [
        "a/b.png",
        "a_b.png",
        "a b.png",
        "a_b.jpg",
        "a<b>.png",
        "../../escape.png",
        ".hidden",
        TRICKY,
        "\u00e9t\u00e9.png",
    ]
    stems = set()
    for name in names:
        entry = report.save_entry_images(str(tmp_path), name, img, img, img, zoom=2)
        stem = os.path.basename(entry.blurred)[: -len("_blurred.png")]
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in stem), stem
        assert not stem.startswith("."), stem
        stems.add(stem)
    assert len(stems) == len(names)
    assert sorted(os.listdir(tmp_path)) == ["report"]
    assert len(os.listdir(tmp_path / "report")) == 6 * len(names)
    assert report.safe_stem("GOPR0384_11_00/000001.png").startswith("GOPR0384_11_00_000001-")
    assert report.safe_stem("a/b.png") == report.safe_stem("a/b.png")  # deterministic


# --------------------------------------------------------------------------------------------
# write_index_html.

METRICS = ("psnr", "ssim", "cw_ssim", "lpips_alex")


def summary_and_rows():
    summary = {
        "num_images": 4,
        "psnr_blurred": 24.31,
        "psnr": 25.42,
        "ssim_blurred": 0.8012,
        "ssim": 0.85,
        "cw_ssim_blurred": math.nan,
        "cw_ssim": 0.9,
        "lpips_alex_blurred": 0.30,
        "lpips_alex": 0.20,
        "seconds_per_image": 0.1234,
        "source": {"params": "runs/demo/params.msgpack", "step": 1300},
        "data": {"data": "demo", "layout": "demo", "split": "test"},
        "note": "trained <quickly> & on 2 cores",
        "model": None,
    }

    def row(name, psnr_b, psnr, seconds, cw=0.9):
        return {
            "name": name,
            "psnr_blurred": psnr_b,
            "psnr": psnr,
            "ssim_blurred": 0.8,
            "ssim": 0.81,
            "cw_ssim_blurred": 0.95,
            "cw_ssim": cw,
            "lpips_alex_blurred": 0.3,
            "lpips_alex": 0.25,
            "seconds": seconds,
        }

    rows = [
        row("img10.png", 24.0, 25.5, 0.2),
        row(TRICKY, 22.0, math.inf, 0.1),
        row("img2.png", 26.0, 25.0, 0.3, cw=math.nan),
        row("img1.png", 23.0, 24.0, 0.05),
    ]
    return summary, rows


def make_report(out, titles=None):
    """Three entries for the first three rows (the last row has no pictures), plus the tricky
    name's entry with hand-made paths that need URL quoting."""
    summary, rows = summary_and_rows()
    blurred, restored, sharp = astronaut_triple()
    entries = [
        report.save_entry_images(out, rows[0]["name"], blurred, restored, sharp, zoom=32),
        report.save_entry_images(
            out, rows[1]["name"], blurred[:50], restored[:50], sharp[:50], zoom=32
        ),
    ]
    # Paths with a space, '#' and '%' (as a caller could pass them).
    folder = os.path.join(out, "my pics")
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for kind in ("blurred", "restored", "sharp", "zoom_blurred", "zoom_restored", "zoom_sharp"):
        rel = f"my pics/a #1 100%_{kind}.png"
        shutil.copy(os.path.join(out, getattr(entries[0], kind)), os.path.join(out, rel))
        paths[kind] = rel
    entries.append(report.ReportEntry(name=rows[2]["name"], zoom_box=entries[0].zoom_box, **paths))
    path = report.write_index_html(out, summary, rows, METRICS, entries, metric_titles=titles)
    return path, summary, rows, entries


def cells(tr):
    return [c for c in tr.iter() if c.tag in ("td", "th") and c.parent is tr]


def test_index_html_links_resolve_and_nothing_is_remote(tmp_path):
    out = str(tmp_path)
    path, summary, rows, entries = make_report(out)
    assert path == os.path.join(out, "index.html")
    text, root = parse(path)
    lowered = text.lower()
    assert "http:" not in lowered and "https:" not in lowered
    assert "@import" not in lowered and "url(" not in lowered
    ids = {n.attrs["id"] for n in root.iter() if "id" in n.attrs}
    srcs = [n.attrs["src"] for n in root.iter() if "src" in n.attrs]
    hrefs = [n.attrs["href"] for n in root.iter() if "href" in n.attrs]
    # Per entry: the three pictures, the two stacked in the slider, the three crops.
    assert len(list(root.iter("img"))) == len(srcs) == 8 * len(entries)
    fragments = 0
    for ref in srcs + hrefs:
        assert not ref.startswith("//"), ref
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, ref
        if ref.startswith("#"):
            assert ref[1:] in ids, ref
            fragments += 1
            continue
        assert " " not in ref and "#" not in ref, ref  # quoted
        assert os.path.isfile(os.path.join(out, unquote(ref))), ref
    assert fragments >= len(entries)
    assert "my%20pics/a%20%231%20100%25_blurred.png" in srcs
    for i in range(len(entries)):
        assert root.find("section", id=f"img-{i}") is not None
    # Inline script and style only.
    scripts = list(root.iter("script"))
    assert scripts and all("src" not in s.attrs and s.text().strip() for s in scripts)
    styles = list(root.iter("style"))
    assert styles and all(s.text().strip() for s in styles)
    assert not list(root.iter("link"))


def test_index_html_per_image_table_and_sections(tmp_path):
    out = str(tmp_path)
    path, summary, rows, entries = make_report(out)
    text, root = parse(path)
    table = root.find("table", id="per-image-table")
    heads = [c for c in table.find("thead").iter("th")]
    assert len(heads) == 2 + 3 * len(METRICS) + 1
    assert [h.text() for h in heads[:2]] == ["#", "image"]
    assert heads[2].text() == "PSNR (dB) blurred" and heads[4].text() == "PSNR (dB) gain"
    body_rows = [tr for tr in table.find("tbody").iter("tr")]
    assert len(body_rows) == len(rows)
    for i, (tr, row) in enumerate(zip(body_rows, rows)):
        tds = cells(tr)
        assert len(tds) == len(heads) and all(td.tag == "td" for td in tds)
        assert tds[1].text() == row["name"]  # unescaped by the parser: round trip
        link = tds[1].find("a")
        if i < len(entries):
            assert link is not None and link.attrs["href"] == f"#img-{i}"
            section = root.find("section", id=f"img-{i}")
            assert section.find("h2").text().startswith(row["name"])
        else:
            assert link is None
    # The escaped name never appears raw; quotes are escaped inside attributes.
    assert "we<ird>" not in text and "we&lt;ird&gt; &amp; &quot;q&quot;" in text
    tricky = body_rows[1]
    tds = cells(tricky)
    assert tds[1].attrs["data-v"] == TRICKY
    assert [tds[k].text() for k in (2, 3, 4)] == ["22.00", "inf", "inf"]
    assert [tds[k].attrs["data-v"] for k in (2, 3, 4)] == ["22.0", "Infinity", "Infinity"]
    nan_row = cells(body_rows[2])
    assert [nan_row[k].text() for k in (8, 9, 10)] == ["0.9500", "n/a", "n/a"]
    assert [nan_row[k].attrs["data-v"] for k in (8, 9, 10)] == ["0.95", "", ""]
    assert cells(body_rows[2])[4].text() == "-1.00"
    # The tricky entry's section: the pictures saved for that name, the box in pixels.
    section = root.find("section", id="img-1")
    srcs = [n.attrs["src"] for n in section.iter("img")]
    assert entries[1].blurred in srcs and entries[1].zoom_sharp in srcs
    top, left, h, w = entries[1].zoom_box
    assert f"top {top}, left {left}, {h} \u00d7 {w} px" in section.text()
    assert section.find("input", type="range") is not None
    assert section.find("div", class_="cmp") is not None


def test_index_html_summary_numbers(tmp_path):
    out = str(tmp_path)
    path, summary, rows, entries = make_report(out, titles={"cw_ssim": "CW-SSIM"})
    text, root = parse(path)
    table = root.find("table", class_="summary")
    by_metric = {
        tr.attrs["data-metric"]: [c.text() for c in cells(tr)]
        for tr in table.find("tbody").iter("tr")
    }
    assert list(by_metric) == list(METRICS)
    assert by_metric["psnr"] == ["PSNR (dB)", "24.31", "25.42", "+1.11"]
    assert by_metric["ssim"] == ["SSIM (standard)", "0.8012", "0.8500", "+0.0488"]
    assert by_metric["cw_ssim"] == ["CW-SSIM", "n/a", "0.9000", "n/a"]
    assert by_metric["lpips_alex"][1:] == ["0.3000", "0.2000", "+0.1000"]
    assert "lower is better" in by_metric["lpips_alex"][0]
    assert "lower is better" not in by_metric["psnr"][0]
    page = root.text()
    assert "4 images" in page and "0.123 s per image" in page
    assert "runs/demo/params.msgpack" in page and "split: test" in page
    assert "trained <quickly> & on 2 cores" in page and "<quickly>" not in text


def test_index_html_is_written_atomically(tmp_path, monkeypatch):
    out = str(tmp_path)
    path, summary, rows, entries = make_report(out)
    assert not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    report.write_index_html(out, summary, rows[:1], METRICS, entries[:1], title="second run")
    text, root = parse(path)
    assert root.find("title").text() == "second run"
    assert len(list(root.find("table", id="per-image-table").find("tbody").iter("tr"))) == 1
    assert [f for f in os.listdir(out) if f.endswith(".html")] == ["index.html"]

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        report.write_index_html(out, summary, rows, METRICS, entries, title="third run")
    monkeypatch.undo()
    assert parse(path)[1].find("title").text() == "second run"
    assert not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    assert not glob.glob(os.path.join(out, ".*"))


def test_index_html_survives_moving_the_folder(tmp_path):
    out = str(tmp_path / "a")
    make_report(out)
    moved = str(tmp_path / "b" / "c d")
    shutil.move(out, moved)
    text, root = parse(os.path.join(moved, "index.html"))
    for n in root.iter("img"):
        assert os.path.isfile(os.path.join(moved, unquote(n.attrs["src"])))


# --------------------------------------------------------------------------------------------
# The sorting script, run under node with a minimal stand-in for the DOM.

NODE_SHIM = r"""
function el(attrs) {
  return { attrs: Object.assign({}, attrs), listeners: {}, style: { setProperty() {} },
    getAttribute(k) {
      return Object.prototype.hasOwnProperty.call(this.attrs, k) ? this.attrs[k] : null; },
    setAttribute(k, v) { this.attrs[k] = String(v); },
    removeAttribute(k) { delete this.attrs[k]; },
    addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); } };
}
const spec = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const heads = spec.heads.map(h => el(h));
const body = el({});
body.rows = spec.rows.map(r => { const tr = el({'data-i': r.i});
  tr.cells = r.cells.map(v => el(v === null ? {} : {'data-v': v})); return tr; });
body.appendChild = function (tr) {
  this.rows.splice(this.rows.indexOf(tr), 1); this.rows.push(tr); };
const table = el({}); table.tHead = { rows: [{ cells: heads }] }; table.tBodies = [body];
global.document = { querySelectorAll(s) { return s === 'table.sortable' ? [table] : []; },
                    getElementById() { return null; } };
"""

NODE_RUN = r"""
const orders = spec.clicks.map(c => { heads[c].listeners.click.forEach(f => f());
  return { order: body.rows.map(r => Number(r.getAttribute('data-i'))),
           sort: heads.map(h => h.getAttribute('aria-sort')) }; });
console.log(JSON.stringify(orders));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_sorting_script_under_node(tmp_path):
    out = str(tmp_path)
    path, summary, rows, entries = make_report(out)
    text, root = parse(path)
    script = next(root.iter("script")).text()
    table = root.find("table", id="per-image-table")
    heads = [h.attrs for h in table.find("thead").iter("th")]
    body = [
        {"i": tr.attrs["data-i"], "cells": [c.attrs.get("data-v") for c in cells(tr)]}
        for tr in table.find("tbody").iter("tr")
    ]
    psnr, psnr_gain, cw, name_col = 3, 4, 9, 1
    clicks = [psnr, psnr, psnr_gain, cw, cw, name_col, 0, 0]
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"heads": heads, "rows": body, "clicks": clicks}))
    js = tmp_path / "run.js"
    js.write_text(NODE_SHIM + script + NODE_RUN)
    result = subprocess.run(
        ["node", str(js), str(spec_path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)

    def order(key, reverse):
        """Python's sort of the same values: NaN last in both directions, ties by position."""
        values = [key(r) for r in rows]
        finite = [i for i, v in enumerate(values) if not math.isnan(v)]
        finite.sort(key=lambda i: -values[i] if reverse else values[i])
        return finite + [i for i, v in enumerate(values) if math.isnan(v)]

    gain = lambda r: r["psnr"] - r["psnr_blurred"]  # noqa: E731
    expected = [
        order(lambda r: r["psnr"], False),
        order(lambda r: r["psnr"], True),
        order(gain, False),
        order(lambda r: r["cw_ssim"], False),
        order(lambda r: r["cw_ssim"], True),
        [1, 3, 2, 0],  # names, numeric-aware: 'GOPR0384...', img1, img2, img10
        [0, 1, 2, 3],
        [3, 2, 1, 0],
    ]  # '#': the original order, then reversed
    assert [g["order"] for g in got] == expected
    assert got[0]["sort"][psnr] == "ascending" and got[1]["sort"][psnr] == "descending"
    assert sum(s is not None for s in got[2]["sort"]) == 1
    assert got[1]["order"][0] == 1  # inf sorts above every finite value


def test_report_imports_only_stdlib_numpy_and_pil():
    """report.py needs nothing beyond the standard library, NumPy, Pillow and the bottom-layer
    helpers it writes files with (utils/files.py, utils/images.py), whose module-level imports
    are as light (utils/images.py defers TensorFlow to 16-bit PNGs, which reports never write)."""
    allowed = set(sys.stdlib_module_names) | {"numpy", "PIL", "__future__"}
    for rel in (("evaluation", "report.py"), ("utils", "files.py"), ("utils", "images.py")):
        with open(os.path.join(ROOT, "deblurgan_jax", *rel), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        nodes = ast.walk(tree) if rel[0] == "evaluation" else tree.body
        modules = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                modules.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, "no relative imports"
                modules.add(node.module)
        own = {m for m in modules if m.split(".")[0] == "deblurgan_jax"}
        assert own <= {"deblurgan_jax.utils"}, (rel, own)
        others = {m.split(".")[0] for m in modules - own}
        assert others <= allowed, (rel, others - allowed)

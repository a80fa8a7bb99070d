"""Data sources without TensorFlow: folder layouts, listing, header scans, bookkeeping.

Sources (`config.data.source`, every field described in config.data_config()):
  'gopro'      ROOT/{train,test}/<sequence>/{blur,sharp}/*.png (GoPro_Large), matched by name.
  'paired'     ROOT[/<split>]/A/ (blurred) and ROOT[/<split>]/B/ (sharp), matched by file name.
  'ab'         ROOT[/<split>]/*.png, each blurred (left half) and sharp (right half) side by side,
               the original DeblurGAN "aligned" format.
  'synthetic'  SHARP_ROOT[/<split>]/ any sharp photos; blur synthesised on the fly
               (DeblurGAN_Synth).
  'comb'       ROOT in the layout `real_source` mixed with synthetic pairs from SHARP_ROOT, a
               fraction `synthetic_ratio` of the examples synthetic (DeblurGAN_Comb).
  'demo'       scikit-image's bundled colour photos, fixed 6 train / 3 held-out (demo_data.py).

Bad input. Headers are scanned with Pillow before training: blurred/sharp size mismatch is a
`DataError` naming both files; unreadable files are skipped, counted and logged; images smaller
than the crop are mirrored up to it, counted and logged (the pipeline, data/pipeline.py, replaces
files that fail to decode later and counts them in `DataStats`).

Nothing here imports TensorFlow, so commands that only list or check data start without it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from collections.abc import Sequence

from absl import logging

from deblurgan_jax.data import demo_data
from deblurgan_jax.utils import images

SOURCES = ("gopro", "paired", "ab", "synthetic", "comb", "demo")
REAL_SOURCES = ("gopro", "paired", "ab")

LAYOUTS = {
    "gopro": "ROOT/{train,test}/<sequence>/{blur,sharp}/<name>.png with the same names in blur/ "
    "and sharp/ (GoPro_Large)",
    "paired": "ROOT[/<split>]/A/<name> (blurred) and ROOT[/<split>]/B/<name> (sharp)",
    "ab": "ROOT[/<split>]/<name>.png, blurred left half and sharp right half side by side",
    "synthetic": (
        "SHARP_ROOT[/<split>]/**/<name> (sharp photos, any of "
        + " ".join(images.IMAGE_EXTENSIONS)
        + ")"
    ),
}

# Table kinds: two files per pair, one side-by-side file, or a sharp image to blur.
KIND_PAIR, KIND_AB, KIND_SHARP = "pair", "ab", "sharp"


class DataError(ValueError):
    """A data folder that cannot be used: missing, empty, wrong layout or mismatched pairs."""


# --------------------------------------------------------------------------- bookkeeping


@dataclasses.dataclass
class DataStats:
    """What the pipeline skipped, padded or replaced; the caller reads it (e.g. logs it)."""

    num_pairs: int = 0  # usable pairs (or sharp images) found by the scan
    unreadable: list[str] = dataclasses.field(default_factory=list)  # skipped at scan time
    unmatched: list[str] = dataclasses.field(default_factory=list)  # a blurred file w/o sharp twin
    padded: int = 0  # pairs smaller than the crop, mirrored up to it
    replaced: int = 0  # examples whose file failed to decode at run time (another file used)
    dropped: int = 0  # examples lost because every decode attempt failed (later batches shift)
    # Items that failed to decode at run time ('blurred / sharp' paths, or the one file).
    failed_files: set[str] = dataclasses.field(default_factory=set)

    def skipped_files(self) -> list[str]:
        """Every file skipped so far, at scan time or at run time, with the reason."""
        return (
            [f"{f}: unreadable" for f in self.unreadable]
            + [f"{f}: no matching sharp image" for f in self.unmatched]
            + [f"{f}: failed to decode" for f in sorted(self.failed_files)]
        )

    def summary(self) -> str:
        return (
            f"{self.num_pairs} pairs, {len(self.unreadable)} unreadable skipped, "
            f"{len(self.unmatched)} unmatched, {self.padded} padded to the crop, "
            f"{self.replaced} replaced and {self.dropped} dropped at run time"
        )


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One training/eval item: a pair of files, one side-by-side file, or one sharp image."""

    name: str  # relative name, e.g. 'GOPR0372_07_00/000047.png'
    blurred_path: str  # '' when the blur is synthesised; the AB file itself for 'ab'
    sharp_path: str
    height: int  # of one image of the pair (for 'ab': the half)
    width: int


@dataclasses.dataclass(frozen=True)
class ImageTable:
    """Scanned records of one folder, all of one kind."""

    kind: str  # KIND_PAIR, KIND_AB or KIND_SHARP
    records: tuple[ImageRecord, ...]
    folder: str


# --------------------------------------------------------------------------- listing folders


def _is_image(name: str) -> bool:
    return images.is_image_name(name)


def _images_under(folder: str) -> list[str]:
    """Image files under `folder` (recursively), as sorted paths relative to it."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, folder)
        found.extend(os.path.normpath(os.path.join(rel, f)) for f in filenames if _is_image(f))
    return sorted(found)


def _require_folder(folder: str, source: str) -> None:
    if not folder or not os.path.isdir(folder):
        raise DataError(
            f"{source!r} data folder {folder!r} does not exist; expected layout: {LAYOUTS[source]}"
        )


def split_folder(root: str, split: str, source: str) -> str:
    """ROOT/<split> when it exists, else ROOT itself (a folder holding one split only)."""
    _require_folder(root, source)
    candidate = os.path.join(root, split)
    if os.path.isdir(candidate):
        return candidate
    if source == "gopro":
        raise DataError(
            f"GoPro folder {root!r} has no {split!r} split; expected layout: {LAYOUTS['gopro']}"
        )
    logging.warning(
        "%s has no %r subfolder; using the whole folder as the %r split", root, split, split
    )
    return root


def list_gopro(root: str, split: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """((name, blurred, sharp) triples, unmatched blurred files) of a GoPro_Large split."""
    folder = split_folder(root, split, "gopro")
    triples, unmatched = [], []
    # Hidden folders are not sequences (a from-video run killed before its swap leaves one).
    for sequence in sorted(d for d in os.listdir(folder) if not d.startswith(".")):
        blur_dir = os.path.join(folder, sequence, "blur")
        sharp_dir = os.path.join(folder, sequence, "sharp")
        if not os.path.isdir(blur_dir):
            continue
        sharp_names = set(os.listdir(sharp_dir)) if os.path.isdir(sharp_dir) else set()
        for name in sorted(f for f in os.listdir(blur_dir) if _is_image(f)):
            if name in sharp_names:
                triples.append(
                    (
                        f"{sequence}/{name}",
                        os.path.join(blur_dir, name),
                        os.path.join(sharp_dir, name),
                    )
                )
            else:
                unmatched.append(os.path.join(blur_dir, name))
    return triples, unmatched


def list_paired(root: str, split: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """((name, blurred, sharp) triples, unmatched files) of A/ (blurred) and B/ (sharp) folders."""
    folder = root
    if not os.path.isdir(os.path.join(root, "A")):
        folder = split_folder(root, split, "paired")
    blurred_dir, sharp_dir = os.path.join(folder, "A"), os.path.join(folder, "B")
    if not (os.path.isdir(blurred_dir) and os.path.isdir(sharp_dir)):
        raise DataError(
            f"paired folder {folder!r} needs subfolders A/ and B/; expected layout: "
            f"{LAYOUTS['paired']}"
        )
    blurred, sharp = _images_under(blurred_dir), set(_images_under(sharp_dir))
    triples = [
        (n, os.path.join(blurred_dir, n), os.path.join(sharp_dir, n)) for n in blurred if n in sharp
    ]
    unmatched = [os.path.join(blurred_dir, n) for n in blurred if n not in sharp] + [
        os.path.join(sharp_dir, n) for n in sorted(sharp - set(blurred))
    ]
    return triples, unmatched


def list_ab(root: str, split: str) -> list[tuple[str, str, str]]:
    folder = split_folder(root, split, "ab")
    return [(n, os.path.join(folder, n), os.path.join(folder, n)) for n in _images_under(folder)]


def list_sharp(root: str, split: str) -> list[tuple[str, str, str]]:
    folder = split_folder(root, split, "synthetic")
    return [(n, "", os.path.join(folder, n)) for n in _images_under(folder)]


# --------------------------------------------------------------------------- header scan


def _header_size(path: str) -> tuple[int, int]:
    """(height, width) from the file header (Pillow reads no pixels); raises if unreadable,
    including a header claiming more pixels than Pillow decodes (a decompression bomb)."""
    with images.open_image(path) as image:
        width, height = image.size
    if width < 1 or height < 1:
        raise ValueError(f"empty image {width}x{height}")
    return height, width


def _scan_one(kind: str, triple: tuple[str, str, str]) -> ImageRecord | str:
    """The record of one item, or the path of its unreadable file. Mismatch raises DataError."""
    name, blurred, sharp = triple
    sizes = {}
    for path in dict.fromkeys(p for p in (blurred, sharp) if p):
        try:
            sizes[path] = _header_size(path)
        except Exception:  # Pillow raises many types for broken files
            return path
    height, width = sizes[sharp]
    if kind == KIND_PAIR and sizes[blurred] != sizes[sharp]:
        raise DataError(
            f"blurred and sharp images differ in size: {blurred} is "
            f"{sizes[blurred][1]}x{sizes[blurred][0]}, {sharp} is {width}x{height}"
        )
    if kind == KIND_AB:
        if width < 2:
            return sharp
        width //= 2
    return ImageRecord(name, blurred, sharp, height, width)


def scan_table(
    kind: str, triples: Sequence[tuple[str, str, str]], folder: str, source: str, stats: DataStats
) -> ImageTable:
    """Reads every header (in threads: file I/O), drops unreadable items, checks pair sizes."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(functools.partial(_scan_one, kind), triples))
    records = tuple(r for r in results if isinstance(r, ImageRecord))
    unreadable = [r for r in results if isinstance(r, str)]
    if unreadable:
        logging.warning(
            "skipped %d unreadable image file(s) in %s, e.g. %s",
            len(unreadable),
            folder,
            ", ".join(unreadable[:5]),
        )
    stats.unreadable.extend(unreadable)
    if not records:
        what = "images" if kind == KIND_SHARP else "pairs"
        raise DataError(
            f"no usable {what} in {folder!r} ({len(triples)} candidates, "
            f"{len(unreadable)} unreadable); expected layout: {LAYOUTS[source]}"
        )
    stats.num_pairs += len(records)
    return ImageTable(kind, records, folder)


def load_table(source: str, root: str, split: str, stats: DataStats) -> ImageTable:
    """Lists and scans one split of one source folder."""
    if source == "gopro":
        triples, unmatched = list_gopro(root, split)
        kind = KIND_PAIR
    elif source == "paired":
        triples, unmatched = list_paired(root, split)
        kind = KIND_PAIR
    elif source == "ab":
        triples, unmatched, kind = list_ab(root, split), [], KIND_AB
    elif source == "synthetic":
        triples, unmatched, kind = list_sharp(root, split), [], KIND_SHARP
    elif source == "demo":
        triples = [(name, "", path) for name, path in demo_data.demo_images(split)]
        unmatched, kind, source = [], KIND_SHARP, "synthetic"
        root = demo_data.skimage_data_dir()
    else:
        raise DataError(f"unknown data source {source!r}; expected one of {SOURCES}")
    if unmatched:
        logging.warning(
            "%d file(s) in %s have no partner and are ignored, e.g. %s",
            len(unmatched),
            root,
            ", ".join(unmatched[:5]),
        )
    stats.unmatched.extend(unmatched)
    return scan_table(kind, triples, root, source, stats)


def count_small(table: ImageTable, crop_size: int, downscale: int, stats: DataStats) -> None:
    small = [
        r.name
        for r in table.records
        if min(r.height // downscale, r.width // downscale) < crop_size
    ]
    if small:
        logging.warning(
            "%d of %d images in %s are smaller than the %dx%d crop (after downscale "
            "x%d); they are mirror-padded up to it, e.g. %s",
            len(small),
            len(table.records),
            table.folder,
            crop_size,
            crop_size,
            downscale,
            ", ".join(small[:5]),
        )
    stats.padded += len(small)

"""tf.data input pipelines: (blurred, sharp) pairs as NHWC float32 in [-1, 1].

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

Determinism. The training pipeline is a pure function of (seed, global example index i):
example i of epoch e = i // N is file `index_shuffle(i % N, seed(seed, e))` (a stateless
permutation), and its crop, flip, blur kernel and noise come from `tf.random.stateless_*` with a
seed folded from (seed, i). There is no shuffle buffer and no iterator state, so
`start_index=k * batch_size` yields exactly the batches k, k+1, ... of a run started at 0, and
each host computes only its own slice of every global batch.

Synthetic blur. `motion_blur.sample_kernels` (NumPy) makes a seeded bank of kernels once; examples
gather a kernel from it and convolve in TensorFlow by FFT (`blur_tf` equals `motion_blur.blur`), which
scales with the tf.data threads, unlike a NumPy sampler in `tf.numpy_function` (GIL-bound). The
crop is taken with the kernel's margin of real image around it (mirrored only at image borders),
so a synthetic crop equals the same crop of the whole image blurred with `motion_blur.blur`.

Bad input. Headers are scanned with Pillow before training: blurred/sharp size mismatch is a
`DataError` naming both files; unreadable files are skipped, counted and logged; images smaller
than the crop are mirrored up to it, counted and logged. Any file that fails to decode later
(e.g. truncated after a valid header) is replaced by another file chosen deterministically from
the example index (up to `decode_attempts` tries), counted in `DataStats.replaced` and logged;
it never stops an epoch. Grayscale, RGBA (alpha dropped) and 16-bit PNGs decode to 8-bit RGB.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf

from deblurgan_jax import images
from deblurgan_jax import motion_blur
from deblurgan_jax import demo_data

SOURCES = ("gopro", "paired", "ab", "synthetic", "comb", "demo")
REAL_SOURCES = ("gopro", "paired", "ab")
# Formats that both Pillow (header scan) and tf.io.decode_image read.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

LAYOUTS = {
    "gopro": "ROOT/{train,test}/<sequence>/{blur,sharp}/<name>.png with the same names in blur/ "
             "and sharp/ (GoPro_Large)",
    "paired": "ROOT[/<split>]/A/<name> (blurred) and ROOT[/<split>]/B/<name> (sharp)",
    "ab": "ROOT[/<split>]/<name>.png, blurred left half and sharp right half side by side",
    "synthetic": "SHARP_ROOT[/<split>]/**/<name>.{png,jpg,jpeg,bmp} (sharp photos)",
}

# Tags folded into the seed so that the permutation, example and table streams never collide.
_TAG_PERMUTATION = 1
_TAG_EXAMPLE = 2
_TAG_EVAL = 3
_TAG_KERNEL_BANK = 0x6b65726e  # NumPy kernel-bank generator: default_rng([seed, tag])
# Per-example random streams (rows of stateless_split).
_STREAM_CROP_Y, _STREAM_CROP_X, _STREAM_FLIP, _STREAM_KERNEL, _STREAM_NOISE = range(5)
_NUM_STREAMS = 5
# Table kinds: two files per pair, one side-by-side file, or a sharp image to blur.
_KIND_PAIR, _KIND_AB, _KIND_SHARP = "pair", "ab", "sharp"


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
        return ([f"{f}: unreadable" for f in self.unreadable]
                + [f"{f}: no matching sharp image" for f in self.unmatched]
                + [f"{f}: failed to decode" for f in sorted(self.failed_files)])

    def summary(self) -> str:
        return (f"{self.num_pairs} pairs, {len(self.unreadable)} unreadable skipped, "
                f"{len(self.unmatched)} unmatched, {self.padded} padded to the crop, "
                f"{self.replaced} replaced and {self.dropped} dropped at run time")


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
    kind: str  # _KIND_PAIR, _KIND_AB or _KIND_SHARP
    records: tuple[ImageRecord, ...]
    folder: str


def hide_gpus_from_tf() -> None:
    """Keeps TensorFlow off the GPUs (JAX owns them); must run before TF touches a device."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised: fine if TF sees no GPU anyway
        if tf.config.get_visible_devices("GPU"):
            logging.warning("TensorFlow was initialised before hide_gpus_from_tf() and holds "
                            "GPUs: %s", tf.config.get_visible_devices("GPU"))


# --------------------------------------------------------------------------- listing folders


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _images_under(folder: str) -> list[str]:
    """Image files under `folder` (recursively), as sorted paths relative to it."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, folder)
        found.extend(os.path.normpath(os.path.join(rel, f)) for f in filenames if _is_image(f))
    return sorted(found)


def _require_folder(folder: str, source: str) -> None:
    if not folder or not os.path.isdir(folder):
        raise DataError(f"{source!r} data folder {folder!r} does not exist; expected layout: "
                        f"{LAYOUTS[source]}")


def split_folder(root: str, split: str, source: str) -> str:
    """ROOT/<split> when it exists, else ROOT itself (a folder holding one split only)."""
    _require_folder(root, source)
    candidate = os.path.join(root, split)
    if os.path.isdir(candidate):
        return candidate
    if source == "gopro":
        raise DataError(f"GoPro folder {root!r} has no {split!r} split; expected layout: "
                        f"{LAYOUTS['gopro']}")
    logging.warning("%s has no %r subfolder; using the whole folder as the %r split", root, split,
                    split)
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
                triples.append((f"{sequence}/{name}", os.path.join(blur_dir, name),
                                os.path.join(sharp_dir, name)))
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
        raise DataError(f"paired folder {folder!r} needs subfolders A/ and B/; expected layout: "
                        f"{LAYOUTS['paired']}")
    blurred, sharp = _images_under(blurred_dir), set(_images_under(sharp_dir))
    triples = [(n, os.path.join(blurred_dir, n), os.path.join(sharp_dir, n))
               for n in blurred if n in sharp]
    unmatched = ([os.path.join(blurred_dir, n) for n in blurred if n not in sharp] +
                 [os.path.join(sharp_dir, n) for n in sorted(sharp - set(blurred))])
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
        except Exception:  # Pillow raises many types for broken files. pylint: disable=broad-except
            return path
    height, width = sizes[sharp]
    if kind == _KIND_PAIR and sizes[blurred] != sizes[sharp]:
        raise DataError(f"blurred and sharp images differ in size: {blurred} is "
                        f"{sizes[blurred][1]}x{sizes[blurred][0]}, {sharp} is {width}x{height}")
    if kind == _KIND_AB:
        if width < 2:
            return sharp
        width //= 2
    return ImageRecord(name, blurred, sharp, height, width)


def scan_table(kind: str, triples: Sequence[tuple[str, str, str]], folder: str, source: str,
               stats: DataStats) -> ImageTable:
    """Reads every header (in threads: file I/O), drops unreadable items, checks pair sizes."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(functools.partial(_scan_one, kind), triples))
    records = tuple(r for r in results if isinstance(r, ImageRecord))
    unreadable = [r for r in results if isinstance(r, str)]
    if unreadable:
        logging.warning("skipped %d unreadable image file(s) in %s, e.g. %s", len(unreadable),
                        folder, ", ".join(unreadable[:5]))
    stats.unreadable.extend(unreadable)
    if not records:
        what = "images" if kind == _KIND_SHARP else "pairs"
        raise DataError(f"no usable {what} in {folder!r} ({len(triples)} candidates, "
                        f"{len(unreadable)} unreadable); expected layout: {LAYOUTS[source]}")
    stats.num_pairs += len(records)
    return ImageTable(kind, records, folder)


def load_table(source: str, root: str, split: str, stats: DataStats) -> ImageTable:
    """Lists and scans one split of one source folder."""
    if source == "gopro":
        triples, unmatched = list_gopro(root, split)
        kind = _KIND_PAIR
    elif source == "paired":
        triples, unmatched = list_paired(root, split)
        kind = _KIND_PAIR
    elif source == "ab":
        triples, unmatched, kind = list_ab(root, split), [], _KIND_AB
    elif source == "synthetic":
        triples, unmatched, kind = list_sharp(root, split), [], _KIND_SHARP
    elif source == "demo":
        triples = [(name, "", path) for name, path in demo_data.demo_images(split)]
        unmatched, kind, source = [], _KIND_SHARP, "synthetic"
        root = demo_data.skimage_data_dir()
    else:
        raise DataError(f"unknown data source {source!r}; expected one of {SOURCES}")
    if unmatched:
        logging.warning("%d file(s) in %s have no partner and are ignored, e.g. %s", len(unmatched),
                        root, ", ".join(unmatched[:5]))
    stats.unmatched.extend(unmatched)
    return scan_table(kind, triples, root, source, stats)


def _count_small(table: ImageTable, crop_size: int, downscale: int, stats: DataStats) -> None:
    small = [r.name for r in table.records
             if min(r.height // downscale, r.width // downscale) < crop_size]
    if small:
        logging.warning("%d of %d images in %s are smaller than the %dx%d crop (after downscale "
                        "x%d); they are mirror-padded up to it, e.g. %s", len(small),
                        len(table.records), table.folder, crop_size, crop_size, downscale,
                        ", ".join(small[:5]))
    stats.padded += len(small)


# --------------------------------------------------------------------------- TF image ops


def decode_rgb8(path: tf.Tensor) -> tf.Tensor:
    """Any PNG/JPEG/BMP/GIF file as uint8 (H, W, 3): gray expanded, alpha dropped, 16 -> 8 bit."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, dtype=tf.uint8,
                               expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def reflect_indices(start: tf.Tensor, length: int | tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Indices start, ..., start + length - 1 mirrored into [0, size) about the edge pixels.

    The same as np.pad(mode='reflect') (what motion_blur.blur uses), repeated as often as needed, so it
    also pads an image smaller than the margin or the crop.
    """
    size = tf.cast(size, tf.int32)
    index = tf.cast(start, tf.int32) + tf.range(length, dtype=tf.int32)
    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(index, period)
    index = tf.where(index >= size, period - index, index)
    return tf.where(size > 1, index, tf.zeros_like(index))


def _full_res_indices(work_index: tf.Tensor, downscale: int) -> tf.Tensor:
    """Full-resolution rows/cols covering working-resolution rows/cols (downscale x d)."""
    if downscale == 1:
        return work_index
    return tf.reshape(work_index[:, None] * downscale + tf.range(downscale)[None, :], [-1])


def crop_window(image: tf.Tensor, top: tf.Tensor, left: tf.Tensor, size: int,
                work_height: tf.Tensor, work_width: tf.Tensor, downscale: int = 1,
                col_offset: tf.Tensor | int = 0) -> tf.Tensor:
    """Full-resolution uint8 window of working rows top..top+size-1 and cols left..left+size-1.

    Working coordinates are those of the image downscaled by `downscale`, of size
    (work_height, work_width); `col_offset` (full resolution) selects the right half of an AB
    image. Rows/cols outside the image are mirrored (np.pad 'reflect', repeated as needed). A
    window inside the image (the usual case) is a plain slice: mirroring needs a gather, which
    costs ~4x as much on a 512x512 window.
    """
    d = downscale

    def inside() -> tf.Tensor:
        return image[top * d:(top + size) * d, col_offset + left * d:col_offset + (left + size) * d]

    def mirrored() -> tf.Tensor:
        rows = _full_res_indices(reflect_indices(top, size, work_height), d)
        cols = _full_res_indices(reflect_indices(left, size, work_width), d) + col_offset
        return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)

    in_bounds = ((top >= 0) & (left >= 0) & (top + size <= work_height) &
                 (left + size <= work_width))
    return tf.ensure_shape(tf.cond(in_bounds, inside, mirrored), [size * d, size * d, 3])


def downscale_to_float(window: tf.Tensor, downscale: int) -> tf.Tensor:
    """uint8 (H, W, 3) -> float32 [0, 255], box-averaged by `downscale` (exact area resize x1/d)."""
    window = tf.cast(window, tf.float32)
    if downscale == 1:
        return window
    return tf.nn.avg_pool2d(window[None], downscale, downscale, "VALID")[0]


def next_fast_len(n: int) -> int:
    """Smallest 2,3,5-smooth integer >= n (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def convolve_valid_fft(padded: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """'valid' 2-D convolution of (P1, P2, C) by (kh, kw), per channel, by FFT in float32.

    Output (P1 - kh + 1, P2 - kw + 1, C):
      out[i, j] = sum_{u, v} padded[i + kh - 1 - u, j + kw - 1 - v] * kernel[u, v].
    A circular convolution of size >= P has no wrap-around on the valid part, so no zero border is
    needed beyond rounding the size up to a fast FFT length.
    """
    kh, kw = kernel.shape[-2], kernel.shape[-1]
    p1, p2 = padded.shape[0], padded.shape[1]
    if p1 is not None and p2 is not None:
        fft_shape = tf.constant([next_fast_len(p1), next_fast_len(p2)], tf.int32)
    else:
        fft_shape = tf.shape(padded)[:2]
    channels_first = tf.transpose(padded, [2, 0, 1])
    spectrum = (tf.signal.rfft2d(channels_first, fft_length=fft_shape) *
                tf.signal.rfft2d(tf.cast(kernel, tf.float32), fft_length=fft_shape))
    full = tf.signal.irfft2d(spectrum, fft_length=fft_shape)
    size = tf.shape(padded)[:2]
    valid = full[:, kh - 1:size[0], kw - 1:size[1]]
    return tf.transpose(valid, [1, 2, 0])


def blur_margins(kernel_size: int) -> tuple[int, int]:
    """(before, after) context pixels that `motion_blur.blur`'s kernel centre convention needs."""
    centre = (kernel_size - 1) // 2
    return kernel_size - 1 - centre, centre


def blur_tf(image: tf.Tensor, kernel: tf.Tensor, noise_std: float = 0.0,
            seed: tf.Tensor | None = None) -> tf.Tensor:
    """TensorFlow twin of `motion_blur.blur`: same-size true convolution with reflection padding.

    Args:
      image: (H, W, C) float image, any range.
      kernel: (kh, kw) kernel summing to 1 (static shape).
      noise_std: std of additive Gaussian noise, in the image's units.
      seed: [2] int stateless seed for the noise (required when noise_std > 0).

    Returns:
      float32 (H, W, C), not clipped; equals motion_blur.blur(image, kernel) up to float32 rounding.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    kernel = tf.convert_to_tensor(kernel, tf.float32)
    (top, bottom), (left, right) = blur_margins(kernel.shape[0]), blur_margins(kernel.shape[1])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows = reflect_indices(-top, height + top + bottom, height)
    cols = reflect_indices(-left, width + left + right, width)
    blurred = convolve_valid_fft(tf.gather(tf.gather(image, rows, axis=0), cols, axis=1), kernel)
    if noise_std > 0:
        if seed is None:
            raise ValueError("noise_std > 0 needs a stateless seed")
        blurred += noise_std * tf.random.stateless_normal(tf.shape(blurred), seed)
    return blurred


def to_unit_range(image: tf.Tensor) -> tf.Tensor:
    """[0, 255] -> [-1, 1] float32 (clipped: blur noise can overshoot)."""
    return tf.clip_by_value(tf.cast(image, tf.float32) / 127.5 - 1.0, -1.0, 1.0)


# --------------------------------------------------------------------------- randomness


def _fold(seed: tf.Tensor, *data: int | tf.Tensor) -> tf.Tensor:
    for value in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int64))
    return seed


def _root_seed(seed: int) -> tf.Tensor:
    return tf.constant([seed, 0], tf.int64)


def kernel_bank(blur_config: ml_collections.ConfigDict, seed: int,
                n: int | None = None) -> np.ndarray:
    """(n, canvas, canvas) float32 kernels, a pure function of (seed, blur settings)."""
    rng = np.random.default_rng([seed, _TAG_KERNEL_BANK])
    kernels = motion_blur.sample_kernels(rng, n or blur_config.kernel_bank_size,
                                         canvas=blur_config.canvas, iters=blur_config.iters,
                                         max_len=blur_config.max_len, expl=blur_config.expl,
                                         fractions=tuple(blur_config.fractions))
    # Runs started before the field existed have no `centre` in their config.json.
    if blur_config.get("centre", False):
        kernels = motion_blur.centre_kernels(kernels)
    return kernels


# --------------------------------------------------------------------------- training pipeline


@dataclasses.dataclass(frozen=True)
class _TableTensors:
    """An ImageTable as constant tensors a tf.data function can index."""
    kind: str
    blurred: tf.Tensor
    sharp: tf.Tensor
    size: int
    permutation_seed: tf.Tensor

    @classmethod
    def build(cls, table: ImageTable, permutation_seed: tf.Tensor) -> _TableTensors:
        return cls(table.kind, tf.constant([r.blurred_path for r in table.records]),
                   tf.constant([r.sharp_path for r in table.records]), len(table.records),
                   permutation_seed)

    def file_index(self, position: tf.Tensor, attempt: tf.Tensor, shuffle: bool) -> tf.Tensor:
        """File of the `position`-th draw from this table; attempt k > 0 takes the k-th next one."""
        epoch = position // self.size
        slot = (position % self.size + tf.cast(attempt, tf.int64)) % self.size
        if not shuffle:
            return slot
        return tf.random.experimental.index_shuffle(slot, _fold(self.permutation_seed, epoch),
                                                    tf.constant(self.size - 1, tf.int64))


@dataclasses.dataclass(frozen=True)
class _CropSpec:
    crop_size: int
    downscale: int
    margin: tuple[int, int]  # context before/after the crop for the synthetic blur
    flip: bool

    @property
    def region(self) -> int:
        return self.crop_size + sum(self.margin)


def _read_regions(table: _TableTensors, index: tf.Tensor, seeds: tf.Tensor,
                  spec: _CropSpec) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(blurred, sharp, path): the random crop of one item with its margin, float32 [0, 255].

    The same rows/cols index both images, so blurred and sharp get the same crop and flip. For a
    sharp-only table the 'blurred' region is the sharp one (blurred later).
    """
    sharp_path = table.sharp[index]
    image = decode_rgb8(sharp_path)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    if table.kind == _KIND_AB:
        width = width // 2
    if table.kind == _KIND_PAIR:
        blurred_image = decode_rgb8(table.blurred[index])
        tf.debugging.assert_equal(tf.shape(blurred_image), shape,
                                  message="blurred and sharp images differ in size")
    work_h, work_w = height // spec.downscale, width // spec.downscale

    def offset(work_size: tf.Tensor, stream: int) -> tf.Tensor:
        # Uniform in [0, size - crop]; an image smaller than the crop is centred and mirrored.
        slack = work_size - spec.crop_size
        random = tf.random.stateless_uniform([], seeds[stream], minval=0,
                                             maxval=tf.maximum(slack, 0) + 1, dtype=tf.int32)
        return tf.where(slack >= 0, random, slack // 2)

    top = offset(work_h, _STREAM_CROP_Y) - spec.margin[0]
    left = offset(work_w, _STREAM_CROP_X) - spec.margin[0]
    flip = (tf.random.stateless_uniform([], seeds[_STREAM_FLIP]) < 0.5 if spec.flip else
            tf.constant(False))

    def region_of(source: tf.Tensor, col_offset: tf.Tensor | int = 0) -> tf.Tensor:
        window = crop_window(source, top, left, spec.region, work_h, work_w, spec.downscale,
                             col_offset)
        region = downscale_to_float(window, spec.downscale)
        return tf.cond(flip, lambda: tf.reverse(region, [1]), lambda: region)

    if table.kind == _KIND_AB:
        blurred, sharp = region_of(image), region_of(image, width)
    else:
        sharp = region_of(image)
        blurred = region_of(blurred_image) if table.kind == _KIND_PAIR else sharp
    region = [spec.region, spec.region, 3]
    return tf.ensure_shape(blurred, region), tf.ensure_shape(sharp, region), sharp_path


def _synthetic_position(index: tf.Tensor, ratio: float) -> tuple[tf.Tensor, tf.Tensor]:
    """(is_synthetic, position in its table) of example `index`.

    floor(n * ratio) (in float64) of the first n examples are synthetic, spread evenly, and each
    table is drawn in its own order, so both are pure functions of the index.
    """
    if ratio <= 0:
        return tf.constant(False), index
    if ratio >= 1:
        return tf.constant(True), index
    before = lambda n: tf.cast(tf.floor(tf.cast(n, tf.float64) * ratio), tf.int64)
    synthetic_before = before(index)
    is_synthetic = before(index + 1) > synthetic_before
    return is_synthetic, tf.where(is_synthetic, synthetic_before, index - synthetic_before)


class Batches:
    """Iterable of numpy batches from a tf.data pipeline, with the pipeline's DataStats.

    Iterating yields {'blurred', 'sharp'} (and 'name' for eval) as numpy arrays; run-time decode
    failures are counted into `stats` and logged as they are seen.
    """

    def __init__(self, dataset: tf.data.Dataset, stats: DataStats, *,
                 num_devices: int | None = None,
                 host_position: Callable[[int], int] | None = None,
                 expected_total: int | None = None,
                 expected_names: Sequence[tuple[str, str]] | None = None):
        self.dataset = dataset  # the tf.data.Dataset of batches (with bookkeeping fields)
        self.stats = stats
        self._num_devices = num_devices
        self._host_position = host_position  # train: global index -> position in this host's stream
        self._expected_total = expected_total  # eval: number of examples a full pass yields
        self._generators: list = []
        self._expected_names = list(expected_names or [])  # eval: (name, file) of every image

    @property
    def expected_total(self) -> int | None:
        """Eval: the number of images a full pass yields (None for training batches)."""
        return self._expected_total

    def _note_replacements(self, attempts: np.ndarray, first_files: np.ndarray) -> None:
        for attempt, files in zip(attempts, first_files):
            if attempt > 0:
                self.stats.replaced += 1
                files = files.decode()
                if files not in self.stats.failed_files:
                    self.stats.failed_files.add(files)
                    logging.warning("could not decode %s; another item took its place (%d so far)",
                                    files, self.stats.replaced)

    def _note_drops(self, index: np.ndarray, seen: int) -> None:
        # Without drops, the last example of the n-th batch sits at position seen - 1 of the stream.
        dropped = self._host_position(int(index[-1])) - (seen - 1)
        if dropped > self.stats.dropped:
            logging.error("%d example(s) failed every decode attempt and were dropped; later "
                          "batches are shifted", dropped - self.stats.dropped)
            self.stats.dropped = dropped

    def close(self) -> None:
        """Releases the pipelines of every iterator made so far (their in-flight work ends)."""
        for generator in self._generators:
            generator.close()
        self._generators.clear()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        generator = self._batches()
        self._generators.append(generator)
        return generator

    def _batches(self) -> Iterator[dict[str, Any]]:
        seen, seen_names = 0, set()
        for batch in self.dataset.as_numpy_iterator():
            if "attempt" in batch:
                self._note_replacements(batch.pop("attempt"), batch.pop("first_files"))
            if "index" in batch:
                index = batch.pop("index")
                seen += len(index)
                self._note_drops(index, seen)
            if "name" in batch:
                batch["name"] = [n.decode() for n in batch["name"]]
                seen += len(batch["name"])
                seen_names.update(batch["name"])
            if self._num_devices:
                batch = {k: v.reshape((self._num_devices, -1) + v.shape[1:])
                         for k, v in batch.items()}
            yield batch
        if self._expected_total is not None and seen < self._expected_total:
            self.stats.dropped += self._expected_total - seen
            missing = [path for name, path in self._expected_names if name not in seen_names]
            self.stats.failed_files.update(missing)
            logging.warning("%d eval image(s) failed to decode and were skipped: %s",
                            self._expected_total - seen, ", ".join(missing))


def _train_tables(data_config: ml_collections.ConfigDict, stats: DataStats
                  ) -> tuple[ImageTable | None, ImageTable | None, float]:
    """(real pairs table, sharp images table, synthetic ratio) of the training split."""
    source, split = data_config.source, data_config.train_split
    if source in REAL_SOURCES:
        return load_table(source, data_config.root, split, stats), None, 0.0
    if source == "synthetic":
        return None, load_table("synthetic", data_config.sharp_root, split, stats), 1.0
    if source == "demo":
        return None, load_table("demo", "", "train", stats), 1.0
    if source == "comb":
        if data_config.real_source not in REAL_SOURCES:
            raise DataError(f"data.real_source must be one of {REAL_SOURCES} for 'comb', got "
                            f"{data_config.real_source!r}")
        ratio = float(data_config.synthetic_ratio)
        if not 0.0 <= ratio <= 1.0:
            raise DataError(f"data.synthetic_ratio must be in [0, 1], got {ratio}")
        return (load_table(data_config.real_source, data_config.root, split, stats),
                load_table("synthetic", data_config.sharp_root, split, stats), ratio)
    raise DataError(f"unknown data source {source!r}; expected one of {SOURCES}")


def _resolve_hosts(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax  # pylint: disable=g-import-not-at-top
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return process_index, process_count


def _host_example_indices(batch_size: int, host_batch: int, process_index: int,
                          start_index: int) -> tf.data.Dataset:
    """Global example indices of this host's slices of global batches start, start + 1, ..."""
    start_step = start_index // batch_size

    def global_index(k: tf.Tensor) -> tf.Tensor:
        step = start_step + k // host_batch
        return step * batch_size + process_index * host_batch + k % host_batch

    return tf.data.Dataset.counter(dtype=tf.int64).map(global_index)


def _host_position_fn(batch_size: int, host_batch: int, process_index: int,
                      start_index: int) -> Callable[[int], int]:
    """Inverse of _host_example_indices: global example index -> position in the host stream."""
    start_step = start_index // batch_size

    def position(index: int) -> int:
        step, offset = divmod(index, batch_size)
        return (step - start_step) * host_batch + offset - process_index * host_batch

    return position


def create_train_dataset(data_config: ml_collections.ConfigDict, *, batch_size: int,
                         crop_size: int, seed: int, num_devices: int | None = None,
                         start_index: int = 0, process_index: int | None = None,
                         process_count: int | None = None) -> Batches:
    """The infinite, shuffled, augmented training pipeline of `data_config` (config.data_config()).

    Args:
      data_config: the `config.data` ConfigDict.
      batch_size: GLOBAL batch size (all hosts and devices together).
      crop_size: side of the random square crops (after the optional downscale).
      seed: root seed; the batches are a pure function of (seed, example index).
      num_devices: when set, each host batch is reshaped to [num_devices, per_device, H, W, C].
      start_index: global index of the first example, a multiple of batch_size: pass
        step * batch_size to resume at `step` with exactly the batches a straight run would see.
      process_index, process_count: this host and the number of hosts (default: jax's); each host
        yields its contiguous slice batch_size // process_count of every global batch.

    Returns:
      `Batches`, iterable of {'blurred', 'sharp'}: float32 [-1, 1], (B_host, crop, crop, 3) or
      (num_devices, B_host // num_devices, crop, crop, 3); `.stats` counts skipped/padded files.
    """
    hide_gpus_from_tf()
    process_index, process_count = _resolve_hosts(process_index, process_count)
    if batch_size < 1 or batch_size % process_count:
        raise ValueError(f"batch_size {batch_size} must be a positive multiple of process_count "
                         f"{process_count}")
    host_batch = batch_size // process_count
    if num_devices and host_batch % num_devices:
        raise ValueError(f"per-host batch {host_batch} must be divisible by num_devices "
                         f"{num_devices}")
    if start_index < 0 or start_index % batch_size:
        raise ValueError(f"start_index {start_index} must be a non-negative multiple of batch_size "
                         f"{batch_size} (step * batch_size)")
    downscale = int(data_config.downscale)
    if downscale not in (1, 2):
        raise ValueError(f"data.downscale must be 1 or 2, got {downscale}")

    stats = DataStats()
    real, sharp, ratio = _train_tables(data_config, stats)
    for table in (real, sharp):
        if table is not None:
            _count_small(table, crop_size, downscale, stats)
    logging.info("training data: %s", stats.summary())

    blur_config = data_config.blur
    synthetic = sharp is not None
    spec = _CropSpec(crop_size, downscale,
                     blur_margins(blur_config.canvas) if synthetic else (0, 0), data_config.flip)
    root = _root_seed(seed)
    permutation = _fold(root, _TAG_PERMUTATION)
    real_t = _TableTensors.build(real, _fold(permutation, 0)) if real else None
    sharp_t = _TableTensors.build(sharp, _fold(permutation, 1)) if sharp else None
    if synthetic:
        bank = tf.constant(kernel_bank(blur_config, seed))
    shuffle = bool(data_config.shuffle)
    attempts = max(1, int(data_config.decode_attempts))
    noise_std = float(blur_config.noise_std) * 255.0  # config is on a 0..1 scale

    def example_seeds(index: tf.Tensor) -> tf.Tensor:
        return tf.random.experimental.stateless_split(_fold(root, _TAG_EXAMPLE, index),
                                                      _NUM_STREAMS)

    def read(index: tf.Tensor, attempt: tf.Tensor) -> dict[str, tf.Tensor]:
        seeds = example_seeds(index)
        is_synthetic, position = _synthetic_position(index, ratio)

        def from_table(table: _TableTensors):
            def read_table():
                file = table.file_index(position, attempt, shuffle)
                first = table.file_index(position, 0, shuffle)
                first_files = table.sharp[first]
                if table.kind == _KIND_PAIR:
                    first_files = tf.strings.join([table.blurred[first], first_files],
                                                  separator=" / ")
                return (*_read_regions(table, file, seeds, spec), first_files)
            return read_table

        if real_t is None:
            blurred, sharp_region, _, first_path = from_table(sharp_t)()
        elif sharp_t is None:
            blurred, sharp_region, _, first_path = from_table(real_t)()
        else:
            blurred, sharp_region, _, first_path = tf.cond(is_synthetic, from_table(sharp_t),
                                                           from_table(real_t))
        return {"blurred": blurred, "sharp": sharp_region, "synthetic": is_synthetic,
                "index": index, "attempt": tf.cast(attempt, tf.int32), "first_files": first_path}

    def read_with_fallback(index: tf.Tensor) -> tf.data.Dataset:
        # Attempt k reads another file only if attempts 0..k-1 raised; concatenate() opens each
        # fallback lazily, so a healthy file is decoded once.
        def attempt_dataset(k):
            return tf.data.Dataset.from_tensors(tf.constant(k, tf.int64)).map(
                lambda a: read(index, a)).ignore_errors()
        chained = functools.reduce(lambda d, k: d.concatenate(attempt_dataset(k)),
                                   range(1, attempts), attempt_dataset(0))
        return chained.take(1)

    def finish(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        lo, hi = spec.margin[0], spec.margin[0] + crop_size
        sharp_crop = example["sharp"][lo:hi, lo:hi]
        blurred_crop = example["blurred"][lo:hi, lo:hi]
        if synthetic:
            seeds = example_seeds(example["index"])

            def synthesise():
                kernel_index = tf.random.stateless_uniform([], seeds[_STREAM_KERNEL], 0,
                                                           bank.shape[0], dtype=tf.int32)
                blurred = convolve_valid_fft(example["sharp"], tf.gather(bank, kernel_index))
                if noise_std > 0:
                    blurred += noise_std * tf.random.stateless_normal(tf.shape(blurred),
                                                                      seeds[_STREAM_NOISE])
                return blurred

            if real_t is None:
                blurred_crop = synthesise()
            else:
                real_crop = blurred_crop
                blurred_crop = tf.cond(example["synthetic"], synthesise, lambda: real_crop)
        return {"blurred": tf.ensure_shape(to_unit_range(blurred_crop), [crop_size, crop_size, 3]),
                "sharp": tf.ensure_shape(to_unit_range(sharp_crop), [crop_size, crop_size, 3]),
                "index": example["index"], "attempt": example["attempt"],
                "first_files": example["first_files"]}

    dataset = _host_example_indices(batch_size, host_batch, process_index, start_index)
    dataset = dataset.interleave(read_with_fallback, cycle_length=tf.data.AUTOTUNE,
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(host_batch, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())
    return Batches(dataset, stats, num_devices=num_devices,
                   host_position=_host_position_fn(batch_size, host_batch, process_index,
                                                   start_index))


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # order is part of the (seed, index) contract
    return options


# --------------------------------------------------------------------------- eval pipeline


def _eval_table(data_config: ml_collections.ConfigDict, stats: DataStats) -> ImageTable:
    source, split = data_config.source, data_config.eval_split
    if source in REAL_SOURCES:
        return load_table(source, data_config.root, split, stats)
    if source == "comb":  # the paper evaluates its Comb model on the real (GoPro) test set
        return load_table(data_config.real_source, data_config.root, split, stats)
    if source == "synthetic":
        return load_table("synthetic", data_config.sharp_root, split, stats)
    if source == "demo":
        return load_table("demo", "", split, stats)
    raise DataError(f"unknown data source {source!r}; expected one of {SOURCES}")


def create_eval_dataset(data_config: ml_collections.ConfigDict, *, batch_size: int = 1,
                        process_index: int = 0, process_count: int = 1) -> Batches:
    """Full images of the eval split, in a fixed (sorted) order, no crop and no flip.

    Synthetic sources ('synthetic', 'demo') blur each held-out image once, deterministically: image
    j gets kernel j of a bank seeded by `data.eval_blur_seed` (never the training bank), and the
    noise seed (eval_blur_seed, j), so every pass and every run sees the same pairs.

    Args:
      data_config: the `config.data` ConfigDict.
      batch_size: images per batch; > 1 needs all images of one size (e.g. GoPro's 1280x720).
      process_index, process_count: optional round-robin sharding of the images across hosts;
        the default gives every host the whole split.

    Returns:
      `Batches` of {'blurred', 'sharp': float32 (B, H, W, 3) in [-1, 1], 'name': list of str}.
    """
    hide_gpus_from_tf()
    stats = DataStats()
    table = _eval_table(data_config, stats)
    downscale = int(data_config.eval_downscale)
    if downscale not in (1, 2):
        raise ValueError(f"data.eval_downscale must be 1 or 2, got {downscale}")
    records = table.records[process_index::process_count]
    sizes = {(r.height // downscale, r.width // downscale) for r in records}
    if batch_size > 1 and len(sizes) > 1:
        raise DataError(f"eval batch_size {batch_size} needs images of one size, "
                        f"{table.folder} has {len(sizes)} sizes; use batch_size 1")
    logging.info("eval data: %s", stats.summary())
    blur_config = data_config.blur
    synthetic = table.kind == _KIND_SHARP
    if synthetic:
        bank = tf.constant(kernel_bank(blur_config, int(data_config.eval_blur_seed),
                                       n=len(table.records)))
    eval_root = _fold(_root_seed(int(data_config.eval_blur_seed)), _TAG_EVAL)
    noise_std = float(blur_config.noise_std) * 255.0
    names = tf.constant([r.name for r in records])
    blurred_paths = tf.constant([r.blurred_path for r in records])
    sharp_paths = tf.constant([r.sharp_path for r in records])
    # Position in the whole split, so a host's image j gets the kernel it gets on one host.
    positions = tf.range(process_index, len(table.records), process_count, dtype=tf.int64)

    def load(j: tf.Tensor) -> dict[str, tf.Tensor]:
        image = decode_rgb8(sharp_paths[j])
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        if table.kind == _KIND_AB:
            width = width // 2
        if table.kind == _KIND_PAIR:
            blurred_image = decode_rgb8(blurred_paths[j])
            tf.debugging.assert_equal(tf.shape(blurred_image), tf.shape(image),
                                      message="blurred and sharp images differ in size")
        rows, cols = (height // downscale) * downscale, (width // downscale) * downscale
        sharp = downscale_to_float(image[:rows, :cols], downscale)
        if table.kind == _KIND_AB:
            blurred = downscale_to_float(image[:rows, width:width + cols], downscale)
        elif table.kind == _KIND_PAIR:
            blurred = downscale_to_float(blurred_image[:rows, :cols], downscale)
        else:
            position = positions[j]
            blurred = blur_tf(sharp, tf.gather(bank, position), noise_std,
                              seed=_fold(eval_root, position))
        return {"blurred": to_unit_range(blurred), "sharp": to_unit_range(sharp), "name": names[j]}

    dataset = tf.data.Dataset.range(len(records)).map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                                      deterministic=True)
    dataset = dataset.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return Batches(dataset.with_options(_options()), stats, expected_total=len(records),
                   expected_names=[(r.name, r.blurred_path or r.sharp_path) for r in records])

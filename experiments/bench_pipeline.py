"""Throughput of the training input pipeline (deblurgan_jax/data/pipeline.py); prints ONE JSON object.

Measures 256x256 (blurred, sharp) pairs per second for
  * the GoPro layout: `--sequences` sequences of `--frames` 1280x720 PNG pairs (each decode is
    two full PNGs), at downscale 1 and 2 (the paper's GoPro setting);
  * on-the-fly synthetic blur from the same sharp frames (kernel bank gathered + FFT blur in TF),
    with the kernel-bank build time reported separately.
The files are written to a temporary folder first (not timed), from scikit-image's bundled
photos resized to 1280x720 plus mild noise, so PNG sizes and decode costs resemble GoPro's.

    python experiments/bench_pipeline.py [--sequences 16 --frames 4 --batch 16 --batches 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from PIL import Image

from configs import data as data_configs
from deblurgan_jax.data import pipeline
from deblurgan_jax.data import demo_data

FRAME_SIZE = (1280, 720)  # GoPro_Large frames (width, height)
CROP = 256


def write_gopro_folder(root: str, sequences: int, frames: int, seed: int = 0) -> int:
    """GoPro-shaped train/ split of 1280x720 PNG pairs; returns the number of pairs."""
    rng = np.random.default_rng(seed)
    photos = [path for _, path in demo_data.demo_images("train") + demo_data.demo_images("test")]
    count = 0
    for s in range(sequences):
        base = Image.open(photos[s % len(photos)]).convert("RGB").resize(FRAME_SIZE, Image.BILINEAR)
        base = np.asarray(base, np.int16)
        for kind in ("blur", "sharp"):
            os.makedirs(os.path.join(root, "train", f"SEQ{s:02d}", kind), exist_ok=True)
        for f in range(frames):
            sharp = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
            blurred = (0.5 * sharp + 0.5 * np.roll(sharp, 5, axis=1)).astype(np.uint8)
            Image.fromarray(sharp).save(
                os.path.join(root, "train", f"SEQ{s:02d}", "sharp", f"{f:06d}.png")
            )
            Image.fromarray(blurred).save(
                os.path.join(root, "train", f"SEQ{s:02d}", "blur", f"{f:06d}.png")
            )
            count += 1
    return count


def pairs_per_second(config, batch_size: int, batches: int, warmup: int = 2) -> float:
    """Pairs/s of the numpy iterator after `warmup` batches (autotune settles, threads start)."""
    iterator = iter(
        pipeline.create_train_dataset(
            config, batch_size=batch_size, crop_size=CROP, seed=0, process_index=0, process_count=1
        )
    )
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        assert batch["blurred"].shape == (batch_size, CROP, CROP, 3)
    return batch_size * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=16, help="GoPro-like sequences")
    parser.add_argument("--frames", type=int, default=4, help="1280x720 pairs per sequence")
    parser.add_argument("--batch", type=int, default=16, help="pairs per batch")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    parser.add_argument("--bank", type=int, default=2048, help="synthetic kernel bank size")
    args = parser.parse_args()

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "GoPro_Large")
        n_pairs = write_gopro_folder(root, args.sequences, args.frames)
        png_mb = (
            sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
            / (2 * n_pairs)
            / 2**20
        )

        config = data_configs.get_config()
        config.root = root
        results = {}
        for downscale in (1, 2):
            config.source, config.downscale = "gopro", downscale
            results[f"gopro_downscale{downscale}_pairs_per_s"] = round(
                pairs_per_second(config, args.batch, args.batches), 1
            )

        config.source, config.downscale = "synthetic", 1
        config.sharp_root = os.path.join(root, "train")
        config.blur.kernel_bank_size = args.bank
        start = time.perf_counter()
        pipeline.kernel_bank(config.blur, seed=0)
        bank_s = time.perf_counter() - start
        results["synthetic_pairs_per_s"] = round(
            pairs_per_second(config, args.batch, args.batches), 1
        )

    print(
        json.dumps(
            {
                "benchmark": "input pipeline throughput, 256x256 training pairs",
                **results,
                "synthetic_kernel_bank": {"kernels": args.bank, "build_s": round(bank_s, 2)},
                "gopro_folder": {
                    "pairs": n_pairs,
                    "sequences": args.sequences,
                    "frame": "1280x720 PNG",
                    "mean_png_mb": round(png_mb, 2),
                },
                "batch_size": args.batch,
                "timed_batches": args.batches,
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "sched_cpus": len(os.sched_getaffinity(0))
                    if hasattr(os, "sched_getaffinity")
                    else None,
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(),
                    "tensorflow": tf.__version__,
                },
            }
        )
    )


if __name__ == "__main__":
    main()

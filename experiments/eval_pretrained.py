"""Reproduces MODEL_CARD.md's results table from the shipped pretrained weights.

python experiments/eval_pretrained.py DATA_DIR [--params FILE] [--out DIR]

DATA_DIR is the public data folder (pairs/, sharp/). Evaluates (PSNR, SSIM, LPIPS AlexNet of the
blurred input and of the restored output, full-size images) on:
  - GoPro test frames (real blur, full 1280x720 frames)        pairs/gopro_full
  - Levin et al. 2009 (measured camera-shake kernels)          pairs/levin2009
  - held-out synthetic: McMaster blurred with the recipe's     sharp/McMaster
    camera shake (centred kernels, max_len 48, a fixed seed)
  - GoPro training crops (real blur; a training-fit row)       pairs/gopro_crops256
with `python -m deblurgan_jax.evaluate` (in-process), and prints one JSON object and the
Markdown table of the model card. Without --params the shipped model is evaluated.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from deblurgan_jax.commands import evaluate
from deblurgan_jax.blurring import motion_blur

METRICS = ("psnr", "ssim", "lpips_alex")
# The held-out synthetic set: the recipe's blur (configs/real_cpu.py), drawn from this seed.
SYNTHETIC_SEED = 20261202
SYNTHETIC_BLUR = {"canvas": 64, "max_len": 48.0}
SETS = (  # (key, title, folder under DATA_DIR)
    ("gopro_full", "GoPro test frames (real, 1280x720)", "pairs/gopro_full"),
    ("levin2009", "Levin et al. 2009 (measured kernels)", "pairs/levin2009"),
    ("synthetic_mcmaster", "McMaster + synthetic shake (held out)", None),
    ("gopro_crops", "GoPro training crops (real; training fit)", "pairs/gopro_crops256"),
)


def make_synthetic_set(sharp_dir: str, out: str) -> str:
    """OUT/A (blurred) and OUT/B (sharp) from the photos of `sharp_dir`, one fixed kernel each."""
    names = sorted(
        n
        for n in os.listdir(sharp_dir)
        if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
    )
    rng = np.random.default_rng(SYNTHETIC_SEED)
    kernels = motion_blur.centre_kernels(
        motion_blur.sample_kernels(rng, len(names), **SYNTHETIC_BLUR)
    )
    for side in ("A", "B"):
        os.makedirs(os.path.join(out, side), exist_ok=True)
    for name, kernel in zip(names, kernels):
        with Image.open(os.path.join(sharp_dir, name)) as im:
            sharp = np.asarray(im.convert("RGB"))
        blurred = np.clip(np.round(motion_blur.blur(sharp, kernel)), 0, 255).astype(np.uint8)
        stem = os.path.splitext(name)[0] + ".png"
        Image.fromarray(sharp).save(os.path.join(out, "B", stem))
        Image.fromarray(blurred).save(os.path.join(out, "A", stem))
    return out


def evaluate_set(folder: str, out: str, params: str | None) -> dict:
    argv = [
        "--data",
        folder,
        "--layout",
        "paired",
        "--out",
        out,
        "--metrics",
        ",".join(METRICS),
        "--noprogress",
        "--overwrite",
    ]
    if params:
        argv += ["--params", params]
    with contextlib.redirect_stdout(io.StringIO()):
        code = evaluate.main(argv)
    if code != 0:
        raise SystemExit(f"error: evaluating {folder} failed (exit {code})")
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def markdown(results: dict) -> str:
    lines = [
        "| set | images | PSNR blurred -> restored (dB) | SSIM blurred -> restored | "
        "LPIPS (AlexNet) blurred -> restored |",
        "|---|---|---|---|---|",
    ]
    for key, title, _ in SETS:
        r = results[key]
        lines.append(
            f"| {title} | {r['num_images']} | {r['psnr_blurred']:.2f} -> {r['psnr']:.2f} "
            f"({r['psnr'] - r['psnr_blurred']:+.2f}) | {r['ssim_blurred']:.4f} -> "
            f"{r['ssim']:.4f} | {r['lpips_alex_blurred']:.4f} -> {r['lpips_alex']:.4f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="the public data folder (pairs/, sharp/)")
    parser.add_argument("--params", help="a generator params file (default: the shipped model)")
    parser.add_argument(
        "--out", help="keep the per-set evaluations here (default: a temporary folder, removed)"
    )
    parser.add_argument(
        "--sets",
        default=",".join(k for k, _, _ in SETS),
        help="comma-separated subset of the sets (default: all)",
    )
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = set(wanted) - {k for k, _, _ in SETS}
    if unknown:
        parser.error(f"--sets: unknown {sorted(unknown)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        results = {}
        for key, _, rel in SETS:
            if key not in wanted:
                continue
            if rel is None:
                sharp = os.path.join(args.data_dir, "sharp", "McMaster")
                folder = make_synthetic_set(sharp, os.path.join(tmp, "synthetic_mcmaster"))
            else:
                folder = os.path.join(args.data_dir, rel)
            if not os.path.isdir(folder):
                print(f"error: {folder} is not a folder", file=sys.stderr)
                return 2
            summary = evaluate_set(folder, os.path.join(out, key), args.params)
            results[key] = {
                k: summary[k]
                for k in ["num_images"] + [f"{m}{s}" for m in METRICS for s in ("_blurred", "")]
            }
        print(json.dumps(results, indent=1))
        if len(results) == len(SETS):
            print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

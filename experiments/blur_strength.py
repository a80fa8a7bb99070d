"""Matches the synthetic blur's strength to real blur: PSNR(blurred, sharp) and the ratio of
gradient energy (blurred / sharp) of real pairs, against the same measures for Boracchi-Foi blur
of sharp photos at several trajectory lengths.

python experiments/blur_strength.py --pairs DATA/pairs/gopro_crops256 \
    --sharp DATA/sharp/Urban100 DATA/sharp/CBSD68 --max-len 8 12 16 24 32

Prints one JSON object: the real pairs' medians and, per max_len, the synthetic medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from deblurgan_jax.blurring import motion_blur

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _load(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def gradient_energy(image: np.ndarray) -> float:
    grey = image.mean(axis=-1)
    return float(np.mean(np.diff(grey, axis=0) ** 2) + np.mean(np.diff(grey, axis=1) ** 2))


def _images(folder: str) -> list[str]:
    return sorted(
        os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS)
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="folder with A/ (blurred) and B/ (sharp)")
    parser.add_argument("--sharp", nargs="+", required=True, help="folders of sharp photos")
    parser.add_argument("--max-len", nargs="+", type=float, default=[8, 12, 16, 24, 32])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--per-image", type=int, default=2, help="kernels per sharp photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-centre",
        action="store_true",
        help="keep the kernels as sampled (not centred on their centroid)",
    )
    args = parser.parse_args(argv)

    real_psnr, real_ratio = [], []
    for path in _images(os.path.join(args.pairs, "A")):
        blurred = _load(path)
        sharp = _load(os.path.join(args.pairs, "B", os.path.basename(path)))
        real_psnr.append(psnr(blurred, sharp))
        real_ratio.append(gradient_energy(blurred) / gradient_energy(sharp))

    rng = np.random.default_rng(args.seed)
    crops = []
    for folder in args.sharp:
        for path in _images(folder):
            image = _load(path)
            h, w = image.shape[:2]
            size = min(args.crop, h, w)
            top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
            crops.append(image[top : top + size, left : left + size])
    result = {
        "real": {
            "pairs": len(real_psnr),
            "psnr_median": float(np.median(real_psnr)),
            "gradient_ratio_median": float(np.median(real_ratio)),
        },
        "synthetic": {},
    }
    for max_len in args.max_len:
        canvas = int(max(16, 2 ** np.ceil(np.log2(max_len + 4))))
        values, ratios = [], []
        for crop in crops:
            kernels = motion_blur.sample_kernels(
                rng, args.per_image, canvas=canvas, max_len=max_len
            )
            if not args.no_centre:
                kernels = motion_blur.centre_kernels(kernels)
            for kernel in kernels:
                blurred = np.clip(motion_blur.blur(crop, kernel), 0, 255).round()
                values.append(psnr(blurred, crop))
                ratios.append(gradient_energy(blurred) / gradient_energy(crop))
        result["synthetic"][str(max_len)] = {
            "canvas": canvas,
            "n": len(values),
            "psnr_median": float(np.median(values)),
            "gradient_ratio_median": float(np.median(ratios)),
        }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

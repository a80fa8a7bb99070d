"""Runs the generator on a bundled sample photo with synthetic motion blur.

    python -m deblurgan_jax.demo --out runs/demo [--params generator.msgpack]

Takes a colour sample photo that scikit-image ships (nothing downloads), blurs it with a
camera-shake kernel from `blur.py`, restores it with the generator and writes
`sharp.png`, `blurred.png`, `restored.png`, `kernel.png` and `summary.json` to `--out`, printing
the PSNR of the blurred input and of the restored output against the sharp photo.
Without `--params` the generator has random weights (nothing trained yet), so the restored image
shows the pipeline working, not deblurring; pass converted official weights
(`python -m deblurgan_jax.convert generator ...`) or trained ones.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from PIL import Image

from deblurgan_jax import blur, export, models


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def sample_photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim != 3 or image.shape[-1] != 3:
        raise SystemExit(f"skimage.data.{name}() is not an RGB photo; pick another --photo")
    return image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deblurgan_jax.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created; files inside replaced)")
    p.add_argument("--photo", default="coffee", help="scikit-image sample photo (default coffee)")
    p.add_argument("--params", default=None, help="generator params (.msgpack); default: random")
    p.add_argument("--size", type=int, default=256, help="centre crop side, multiple of 4")
    p.add_argument("--seed", type=int, default=0, help="seed of the blur kernel and the weights")
    args = p.parse_args(argv)
    if args.size % 4 or args.size < 16:
        print(f"error: --size must be a multiple of 4 and >= 16, got {args.size}", file=sys.stderr)
        return 2

    import jax
    import jax.numpy as jnp

    try:
        sharp = sample_photo(args.photo)
    except AttributeError:
        print(f"error: scikit-image has no sample photo {args.photo!r}", file=sys.stderr)
        return 2
    h, w = sharp.shape[:2]
    s = min(args.size, h // 4 * 4, w // 4 * 4)
    top, left = (h - s) // 2, (w - s) // 2
    sharp = sharp[top:top + s, left:left + s]
    rng = np.random.default_rng(args.seed)
    kernel = blur.sample_kernels(rng, 1, canvas=32, max_len=24)[0]
    blurred = np.clip(blur.blur(sharp.astype(np.float32), kernel), 0, 255).round().astype(np.uint8)

    if args.params:
        try:
            params, cfg = export.load_generator(args.params)
        except export.ParamsFileError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        net = models.ResnetGenerator(**cfg)
    else:
        net = models.ResnetGenerator()
        params = net.init(jax.random.key(args.seed), jnp.zeros((1, 16, 16, 3)))["params"]
        print("note: no --params given, the generator has random weights (untrained)")
    x = jnp.asarray(blurred[None].astype(np.float32) / 127.5 - 1.0)
    fwd = jax.jit(lambda p, x: net.apply({"params": p}, x, deterministic=True))
    jax.block_until_ready(fwd(params, x))
    t0 = time.perf_counter()
    y = np.asarray(jax.block_until_ready(fwd(params, x)))[0]
    seconds = time.perf_counter() - t0
    restored = np.clip((y + 1.0) * 127.5, 0, 255).round().astype(np.uint8)

    os.makedirs(args.out, exist_ok=True)
    Image.fromarray(sharp).save(os.path.join(args.out, "sharp.png"))
    Image.fromarray(blurred).save(os.path.join(args.out, "blurred.png"))
    Image.fromarray(restored).save(os.path.join(args.out, "restored.png"))
    Image.fromarray(blur.kernel_to_uint8(kernel)).save(os.path.join(args.out, "kernel.png"))
    summary = {"photo": args.photo, "size": s, "params": args.params or "random",
               "psnr_blurred_db": psnr_uint8(blurred, sharp),
               "psnr_restored_db": psnr_uint8(restored, sharp), "generator_seconds": seconds}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"PSNR blurred  {summary['psnr_blurred_db']:.2f} dB")
    print(f"PSNR restored {summary['psnr_restored_db']:.2f} dB "
          f"({seconds:.2f} s for the generator on {s}x{s})")
    print(f"wrote {args.out}/{{sharp,blurred,restored,kernel}}.png and summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

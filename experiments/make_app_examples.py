"""Writes the example photos of the web app (deblurgan_jax/app_examples/), reproducibly.

    python experiments/make_app_examples.py [--real ../shared/data/real_blurry]

- three real blurred photos from Kwentar/blur_dataset (CC0), downscaled to 640 pixels on the
  long side (the blur stays visible) and saved as JPEG (each well under 200 KB);
- one photo the project blurs itself: scikit-image's `chelsea` sample (CC0) blurred with a
  camera-shake kernel of deblurgan_jax.motion_blur (fixed seed).
Only images with a clear licence are shipped (README, "Web app" credits them).
"""

import argparse
import glob
import os
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deblurgan_jax.blurring import motion_blur  # noqa: E402

OUT = os.path.join(ROOT, "deblurgan_jax", "app_examples")
LONG_SIDE = 640
QUALITY = 88


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--real",
        default=os.path.join(ROOT, "..", "shared", "data", "real_blurry"),
        help="folder holding the kwentar_*.jpg photos",
    )
    args = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    sources = sorted(glob.glob(os.path.join(args.real, "kwentar_*.jpg")))
    if len(sources) != 3:
        sys.exit(f"error: expected the 3 kwentar_*.jpg photos in {args.real}, found {len(sources)}")
    for src in sources:
        with Image.open(src) as image:
            image = image.convert("RGB")
            image.thumbnail((LONG_SIDE, LONG_SIDE), Image.LANCZOS)
            name = os.path.basename(src).split("_")[1]  # kwentar_106_NIKON... -> 106
            image.save(os.path.join(OUT, f"kwentar_{name}.jpg"), quality=QUALITY)

    import skimage.data  # pylint: disable=g-import-not-at-top

    sharp = skimage.data.chelsea()
    kernel = motion_blur.sample_kernels(
        np.random.default_rng(2018), 1, canvas=32, max_len=24, fractions=(1.0,)
    )[0]
    blurred = np.clip(np.rint(motion_blur.blur(sharp, kernel)), 0, 255).astype(np.uint8)
    Image.fromarray(blurred).save(os.path.join(OUT, "chelsea_shaken.jpg"), quality=QUALITY)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)), "bytes")


if __name__ == "__main__":
    main()

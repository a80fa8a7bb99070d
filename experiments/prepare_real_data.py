"""Lays out the public real-blur data for `configs/real_cpu.py` as symbolic links (no copies).

python experiments/prepare_real_data.py DATA_DIR OUT

DATA_DIR is the folder described in the data README (pairs/, sharp/, ...). Writes
  OUT/real/train/{A,B}   GoPro training crops (real blur; A blurred, B sharp)
  OUT/real/test/{A,B}    the DeblurGAN street crops (real blur), the held-out set monitored during
                         training
  OUT/sharp/train/<set>  the sharp photo sets blurred on the fly (all but the held-out one)
  OUT/sharp/test/<set>   the held-out sharp set (default McMaster)
The GoPro test frames and Levin 2009 are not linked: they are evaluation only.
Prints a JSON summary of the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HELD_OUT_SHARP = "McMaster"


def _link_folder(source: str, target: str) -> int:
    os.makedirs(target, exist_ok=True)
    count = 0
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if not os.path.isfile(path):
            continue
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.realpath(path), link)
        count += 1
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="the public data folder (pairs/, sharp/)")
    parser.add_argument("out", help="where to write the layout of links")
    parser.add_argument(
        "--held-out",
        default=HELD_OUT_SHARP,
        help="sharp set kept out of training (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    pairs = os.path.join(args.data_dir, "pairs")
    sharp = os.path.join(args.data_dir, "sharp")
    for folder in (pairs, sharp):
        if not os.path.isdir(folder):
            print(
                f"error: {folder} is not a folder (expected the data README's layout)",
                file=sys.stderr,
            )
            return 2
    counts = {}
    for split, name in (("train", "gopro_crops256"), ("test", "street_crops256")):
        for side in ("A", "B"):
            n = _link_folder(
                os.path.join(pairs, name, side), os.path.join(args.out, "real", split, side)
            )
        counts[f"real/{split}"] = n
    for name in sorted(os.listdir(sharp)):
        if not os.path.isdir(os.path.join(sharp, name)):
            continue
        split = "test" if name == args.held_out else "train"
        counts[f"sharp/{split}/{name}"] = _link_folder(
            os.path.join(sharp, name), os.path.join(args.out, "sharp", split, name)
        )
    print(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

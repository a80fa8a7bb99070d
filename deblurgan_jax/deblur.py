"""Deblurs image files with a trained generator.

    python -m deblurgan_jax.deblur --params generator.msgpack photo.jpg more_photos/ --out sharp/
    python -m deblurgan_jax.deblur --workdir runs/wild --which best photos/ --out sharp/

Each INPUT is a file or a folder (searched recursively for .png .jpg .jpeg .bmp .tif .tiff
.webp). A file is written to OUT/<its name>, a folder's files to OUT/<path inside the folder>, in
the input's format: grayscale stays grayscale, alpha is carried through untouched, 16-bit PNGs stay
16-bit, EXIF orientation is applied (outputs are upright), JPEGs are written at quality 95.

Safety: nothing is written when an output would replace an input file, or when outputs exist
already (unless --overwrite). Files that cannot be read are listed and skipped; the others are
still written and the exit code is 1.

Large images: an image with a side longer than --tile is restored in tiles whose result equals
the whole-image result (see deblurgan_jax/inference.py); memory then stays bounded by the tile.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

from deblurgan_jax import cli, images, inference, models
from deblurgan_jax.cli import CommandError

DEFAULT_TILE = 2048  # whole-image inference up to about 4 MP (a few GB on CPU), tiles beyond


def check_jobs(jobs: Sequence[images.Job], overwrite: bool) -> None:
    """Refuses (CommandError, nothing written) outputs that replace inputs, collide or exist."""
    sources = {os.path.realpath(j.source): j.source for j in jobs}
    targets: dict[str, str] = {}
    for j in jobs:
        real = os.path.realpath(j.target)
        if real in sources:
            raise cli.UsageError(f"writing {j.target} would overwrite the input {sources[real]}; "
                               f"choose another --out")
        if real in targets:
            raise cli.UsageError(f"{targets[real]} and {j.source} would both be written to "
                               f"{j.target}; deblur them into different --out folders")
        targets[real] = j.source
    existing = [j.target for j in jobs if os.path.exists(j.target)]
    if existing and not overwrite:
        shown = "\n  ".join(existing[:10]) + ("\n  ..." if len(existing) > 10 else "")
        raise cli.UsageError(f"{len(existing)} output file(s) exist already (pass --overwrite to "
                           f"replace them):\n  {shown}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deblurgan_jax.deblur", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder (created)")
    cli.add_generator_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    cli.add_inference_flags(p, default_tile=DEFAULT_TILE)
    p.add_argument("--noprogress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    jobs, failed = images.plan_jobs(args.inputs, args.out)
    failed = [f"{m}: no such file or folder" for m in failed]
    check_jobs(jobs, args.overwrite)
    if not jobs:
        raise CommandError("no image files among the inputs: " + ", ".join(args.inputs))
    params, model_config, _ = cli.load_generator_source(args)
    cli.check_tile_args(args.tile, args.tile_overlap, model_config["n_blocks"])
    generator = models.build_generator(model_config)
    infer = inference.make_inference_fn(generator, tile=args.tile or None,
                                       overlap=args.tile_overlap,
                                       dropout_seed=args.seed if args.dropout else None)
    written = 0
    for job in tqdm(jobs, disable=args.noprogress, desc="deblur", unit="image",
                    dynamic_ncols=True, file=sys.stderr):
        try:
            picture = images.read_picture(job.source)
            restored = infer(params, images.to_model_input(picture)[None])[0]
            os.makedirs(os.path.dirname(os.path.abspath(job.target)), exist_ok=True)
            images.write_picture(job.target, images.from_model_output(restored, picture))
            written += 1
        except images.PictureError as e:
            failed.append(str(e))
    print(f"wrote {written} image(s) to {args.out}")
    if failed:
        print(f"{len(failed)} input(s) skipped:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

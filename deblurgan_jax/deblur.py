"""Deblurs image and video files with a trained generator.

    python -m deblurgan_jax.deblur --params generator.msgpack photo.jpg more_photos/ --out sharp/
    python -m deblurgan_jax.deblur --workdir runs/wild --which best photos/ --out sharp/
    python -m deblurgan_jax.deblur --params generator.msgpack shaky.mp4 --out sharp/ [--side-by-side]

Each INPUT is a file or a folder (searched recursively for the images .png .jpg .jpeg .bmp .tif
.tiff .webp and the videos .mp4 .avi .mov .mkv .m4v .webm). A file is written to OUT/<its name>,
a folder's files to OUT/<path inside the folder>.

Images keep their format: grayscale stays grayscale, alpha is carried through untouched, 16-bit
PNGs stay 16-bit, EXIF orientation is applied (outputs are upright), JPEGs are written at quality
95. Videos: every frame is restored (in batches of --batch-size frames) and written with the
input's frame rate and size in the same container (mp4/m4v/mov/mkv: MPEG-4, avi: MJPEG, webm:
VP8); --side-by-side writes input | restored, twice as wide. Audio is not carried. Video encoders
need an even width and height: an odd-sized video is written one row/column smaller (said on
stderr). A video appears in OUT only once complete.

Safety: nothing is written when an output would replace an input file, or when outputs exist
already (unless --overwrite). Inputs that cannot be read (broken images, corrupt or truncated
videos) are listed and skipped; the others are still written and the exit code is 1.

Large images: an image with a side longer than --tile is restored in tiles whose result equals
the whole-image result (see deblurgan_jax/inference.py); memory then stays bounded by the tile.

The same from Python: `deblurgan_jax.Deblurrer` (deblurgan_jax/api.py), which this command uses.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from deblurgan_jax import api, cli, images, video
from deblurgan_jax.cli import CommandError
from deblurgan_jax.utils import files

DEFAULT_TILE = api.DEFAULT_TILE
AUDIO_NOTE = "note: audio is not carried over to the restored videos"


def is_input_name(name: str) -> bool:
    """What folders are searched for: images and videos."""
    return images.is_image_name(name) or video.is_video_name(name)


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
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders")
    p.add_argument("--out", required=True, help="output folder (created)")
    cli.add_generator_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    cli.add_inference_flags(p, default_tile=DEFAULT_TILE)
    p.add_argument("--side-by-side", action="store_true",
                   help="videos: write input | restored side by side (twice as wide)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="videos: frames restored at once (default 4)")
    p.add_argument("--noprogress", action="store_true", help="no progress bar")
    return p


def deblur_images(deblurrer: api.Deblurrer, jobs: Sequence[images.Job], progress: bool
                  ) -> tuple[int, list[str]]:
    """(images written, messages of the unreadable ones)."""
    from tqdm import tqdm

    written, failed = 0, []
    for job in tqdm(jobs, disable=not progress, desc="deblur", unit="image",
                    dynamic_ncols=True, file=sys.stderr):
        try:
            restored = deblurrer.restore_picture(images.read_picture(job.source))
            os.makedirs(os.path.dirname(os.path.abspath(job.target)), exist_ok=True)
            images.write_picture(job.target, restored)
            written += 1
        except images.PictureError as e:
            failed.append(str(e))
    return written, failed


def deblur_videos(deblurrer: api.Deblurrer, jobs: Sequence[images.Job],
                  args: argparse.Namespace) -> tuple[int, list[str]]:
    """(videos written, messages of the unreadable ones); a failed video leaves no file."""
    written, failed = 0, []
    for job in jobs:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(job.target)), exist_ok=True)
            result = deblurrer.video(job.source, job.target, side_by_side=args.side_by_side,
                                     batch_size=args.batch_size, progress=not args.noprogress,
                                     overwrite=args.overwrite)
            print(f"{job.target}: {result.frames} frames, {result.width}x{result.height} at "
                  f"{result.fps:.4g} fps")
            written += 1
        except video.VideoError as e:
            failed.append(str(e))
        except ValueError as e:  # e.g. frames too small for the generator
            failed.append(f"{job.source}: {e}")
    return written, failed


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise cli.UsageError(f"--batch-size must be positive, got {args.batch_size}")
    cli.check_out_dir(args.out)
    jobs, failed = images.plan_jobs(args.inputs, args.out, wanted=is_input_name)
    failed = [f"{m}: no such file or folder" for m in failed]
    failed += [f"{item}: a folder without image or video files" for item in args.inputs
               if os.path.isdir(item)
               and not any(j.source.startswith(os.path.join(item, "")) for j in jobs)]
    check_jobs(jobs, args.overwrite)
    if not jobs:
        raise CommandError("no image or video files among the inputs: " + ", ".join(args.inputs))
    out_existed = os.path.exists(args.out)
    try:
        return _deblur(args, jobs, failed)
    finally:
        if not out_existed:  # every input failed (or Ctrl-C came first): no empty --out left
            files.remove_empty_folders(args.out)


def _deblur(args: argparse.Namespace, jobs: list[images.Job], failed: list[str]) -> int:
    params, model_config, provenance = cli.load_generator_source(args)
    cli.check_tile_args(args.tile, args.tile_overlap, model_config["n_blocks"])
    deblurrer = api.Deblurrer(params, model_config, tile=args.tile or None,
                              tile_overlap=args.tile_overlap,
                              dropout_seed=args.seed if args.dropout else None,
                              provenance=provenance)
    # A file named on the command line is a video by its extension, otherwise an image.
    video_jobs = [j for j in jobs if video.is_video_name(j.source)]
    image_jobs = [j for j in jobs if not video.is_video_name(j.source)]
    image_failures: list[str] = []
    if image_jobs and args.side_by_side:
        print("note: --side-by-side applies to videos; images are written restored only",
              file=sys.stderr)
    if image_jobs:
        images_written, image_failures = deblur_images(deblurrer, image_jobs, not args.noprogress)
        print(f"wrote {images_written} image(s) to {args.out}")
    video_failures: list[str] = []
    if video_jobs:
        print(AUDIO_NOTE, file=sys.stderr)
        videos_written, video_failures = deblur_videos(deblurrer, video_jobs, args)
        print(f"wrote {videos_written} video(s) to {args.out}")
    failed += image_failures + video_failures
    if failed:
        print(f"{len(failed)} input(s) skipped:\n  " + "\n  ".join(failed), file=sys.stderr)
        return cli.EXIT_FAILED
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

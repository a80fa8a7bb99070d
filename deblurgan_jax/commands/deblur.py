"""Deblurs image and video files with a trained generator.

    python -m deblurgan_jax.deblur photo.jpg more_photos/ --out sharp/ [--report]
    python -m deblurgan_jax.deblur --workdir runs/wild --which best photos/ --out sharp/
    python -m deblurgan_jax.deblur --params generator.msgpack shaky.mp4 --out sharp/ [--side-by-side]

Without --params or --workdir the pretrained model shipped with the package is used.

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
the whole-image result (see deblurgan_jax/networks/inference.py); memory then stays bounded by the tile.

--report also writes OUT/index.html, a page to look at the results in a browser: every photo
blurred | restored, a before/after slider and an enlarged crop of the region the restoration
changed most (its pictures in OUT/report/; no network resources, relative links, so the folder
can be moved or shared). Videos are not part of the page.

The same from Python: `deblurgan_jax.Deblurrer` (deblurgan_jax/api.py), which this command uses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

from deblurgan_jax import api
from deblurgan_jax.blurring import video
from deblurgan_jax.commands import cli
from deblurgan_jax.commands.cli import CommandError
from deblurgan_jax.evaluation import report
from deblurgan_jax.utils import files, images

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
            raise cli.UsageError(
                f"writing {j.target} would overwrite the input {sources[real]}; "
                f"choose another --out"
            )
        if real in targets:
            raise cli.UsageError(
                f"{targets[real]} and {j.source} would both be written to "
                f"{j.target}; deblur them into different --out folders"
            )
        targets[real] = j.source
    existing = [j.target for j in jobs if os.path.exists(j.target)]
    if existing and not overwrite:
        shown = "\n  ".join(existing[:10]) + ("\n  ..." if len(existing) > 10 else "")
        raise cli.UsageError(
            f"{len(existing)} output file(s) exist already (pass --overwrite to "
            f"replace them):\n  {shown}"
        )


def report_paths(out: str) -> list[str]:
    """What --report writes besides the restored files: OUT/index.html and OUT/report/."""
    return [os.path.join(out, report.INDEX_NAME), os.path.join(out, report.REPORT_DIR)]


def check_report(jobs: Sequence[images.Job], out: str, overwrite: bool) -> None:
    """Refuses a --report whose page or pictures would collide with an input or a restored
    file, or replace an earlier page without --overwrite."""
    index, folder = report_paths(out)
    for j in jobs:
        for path in (j.source, j.target):
            if os.path.realpath(path) == os.path.realpath(index) or files.is_within(path, folder):
                raise cli.UsageError(
                    f"--report writes {index} and {folder}/, which would "
                    f"replace {path}; choose another --out"
                )
    existing = [p for p in (index, folder) if os.path.exists(p)]
    if existing and not overwrite:
        raise cli.UsageError(
            f"{existing[0]} exists already (pass --overwrite to replace the report)"
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.deblur",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders")
    p.add_argument("--out", required=True, help="output folder (created)")
    cli.add_generator_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    cli.add_inference_flags(p, default_tile=DEFAULT_TILE)
    p.add_argument(
        "--side-by-side",
        action="store_true",
        help="videos: write input | restored side by side (twice as wide)",
    )
    p.add_argument(
        "--batch-size", type=int, default=4, help="videos: frames restored at once (default 4)"
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="images: also write OUT/index.html, a page showing every photo blurred "
        "| restored with a before/after slider and an enlarged crop",
    )
    p.add_argument("--noprogress", action="store_true", help="no progress bar")
    return p


def deblur_images(
    deblurrer: api.Deblurrer,
    jobs: Sequence[images.Job],
    progress: bool,
    report_dir: str | None = None,
) -> tuple[int, list[str], list[dict]]:
    """(images written, messages of the unreadable ones, report rows). With `report_dir`, each
    written image's blurred | restored pictures are saved there for the page
    (report.save_entry_images) and its row carries the entry."""
    from tqdm import tqdm

    written, failed, rows = 0, [], []
    for job in tqdm(
        jobs, disable=not progress, desc="deblur", unit="image", dynamic_ncols=True, file=sys.stderr
    ):
        try:
            picture = images.read_picture(job.source)
            start = time.perf_counter()
            restored = deblurrer.restore_picture(picture)
            seconds = time.perf_counter() - start
            os.makedirs(os.path.dirname(os.path.abspath(job.target)), exist_ok=True)
            images.write_picture(job.target, restored)
            written += 1
        except images.PictureError as e:
            failed.append(str(e))
            continue
        if report_dir is not None:
            name = os.path.relpath(job.target, report_dir)
            entry = report.save_entry_images(
                report_dir, name, images.display_rgb8(picture), images.display_rgb8(restored), None
            )
            height, width = picture.color.shape[:2]
            rows.append(
                {"name": name, "seconds": seconds, "size": f"{width} x {height}", "entry": entry}
            )
    return written, failed, rows


def write_report(out: str, rows: Sequence[dict], provenance: dict) -> str:
    """OUT/index.html for the restored photos of `rows` (see deblur_images)."""
    seconds = [r["seconds"] for r in rows]
    summary = {
        "num_images": len(rows),
        "seconds_per_image": sum(seconds) / len(seconds) if seconds else float("nan"),
        "model": provenance,
    }
    return report.write_index_html(
        out,
        summary,
        [{k: v for k, v in r.items() if k != "entry"} for r in rows],
        [],
        [r["entry"] for r in rows],
        title="deblurgan-jax: restored photos",
    )


def deblur_videos(
    deblurrer: api.Deblurrer, jobs: Sequence[images.Job], args: argparse.Namespace
) -> tuple[int, list[str]]:
    """(videos written, messages of the unreadable ones); a failed video leaves no file."""
    written, failed = 0, []
    for job in jobs:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(job.target)), exist_ok=True)
            result = deblurrer.video(
                job.source,
                job.target,
                side_by_side=args.side_by_side,
                batch_size=args.batch_size,
                progress=not args.noprogress,
                overwrite=args.overwrite,
            )
            print(
                f"{job.target}: {result.frames} frames, {result.width}x{result.height} at "
                f"{result.fps:.4g} fps"
            )
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
    failed += [
        f"{item}: a folder without image or video files"
        for item in args.inputs
        if os.path.isdir(item)
        and not any(j.source.startswith(os.path.join(item, "")) for j in jobs)
    ]
    check_jobs(jobs, args.overwrite)
    if not jobs:
        raise CommandError("no image or video files among the inputs: " + ", ".join(args.inputs))
    if args.report:
        check_report(jobs, args.out, args.overwrite)
    out_existed = os.path.exists(args.out)
    try:
        return _deblur(args, jobs, failed)
    finally:
        if not out_existed:  # every input failed (or Ctrl-C came first): no empty --out left
            files.remove_empty_folders(args.out)


def _deblur(args: argparse.Namespace, jobs: list[images.Job], failed: list[str]) -> int:
    params, model_config, provenance = cli.load_generator_source(args)
    cli.check_tile_args(args.tile, args.tile_overlap, model_config["n_blocks"])
    deblurrer = api.Deblurrer(
        params,
        model_config,
        tile=args.tile or None,
        tile_overlap=args.tile_overlap,
        dropout_seed=args.seed if args.dropout else None,
        provenance=provenance,
    )
    # A file named on the command line is a video by its extension, otherwise an image.
    video_jobs = [j for j in jobs if video.is_video_name(j.source)]
    image_jobs = [j for j in jobs if not video.is_video_name(j.source)]
    image_failures: list[str] = []
    if image_jobs and args.side_by_side:
        print(
            "note: --side-by-side applies to videos; images are written restored only",
            file=sys.stderr,
        )
    if image_jobs:
        images_written, image_failures, rows = deblur_images(
            deblurrer, image_jobs, not args.noprogress, args.out if args.report else None
        )
        print(f"wrote {images_written} image(s) to {args.out}")
        if args.report and rows:
            print(f"wrote the report {write_report(args.out, rows, provenance)}")
    video_failures: list[str] = []
    if video_jobs:
        print(AUDIO_NOTE, file=sys.stderr)
        videos_written, video_failures = deblur_videos(deblurrer, video_jobs, args)
        print(f"wrote {videos_written} video(s) to {args.out}")
    failed += image_failures + video_failures
    return cli.report_skipped(failed)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

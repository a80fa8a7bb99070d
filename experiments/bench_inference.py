"""Full-image inference on CPU: seconds per 1280x720 image for the paper's generator (ngf 64,
9 blocks), jitted JAX vs the PyTorch reference (tests/torch_reference.py), and the peak memory of
tiled inference (whole-image InstanceNorm statistics, inference.restore_tiled) of a 4000x3000
photo.

Prints one JSON object. Each measurement runs in a fresh subprocess and reports its peak resident
set (ru_maxrss), so one measurement's allocations never hide another's. Weights are random
(speed and memory do not depend on them); the 4000x3000 photo is scikit-image's coffee photo
resized up.

Usage: python experiments/bench_inference.py [--repeats 1] [--tile 1024] [--skip-tiled]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 720, 1280
BIG_HEIGHT, BIG_WIDTH = 3000, 4000


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def bench_jax(repeats: int) -> dict:
    import jax
    import numpy as np

    sys.path.insert(0, ROOT)
    from deblurgan_jax.networks import inference, models

    g = models.build_generator(models.DEFAULT_GENERATOR_CONFIG)  # conv_impl auto
    params = g.init(jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))["params"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, HEIGHT, WIDTH, 3)).astype(np.float32)
    restore = inference.make_restore_fn(g)
    start = time.perf_counter()
    jax.block_until_ready(restore(params, x))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(restore(params, x))
        times.append(time.perf_counter() - start)
    return {"seconds_per_image": min(times), "first_call_s": first, "peak_rss_gib": peak_rss_gib()}


def bench_torch(repeats: int) -> dict:
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import torch_reference as ref

    net = ref.ResnetGenerator().eval()
    x = torch.rand(1, 3, HEIGHT, WIDTH) * 2 - 1
    times = []
    with torch.inference_mode():
        net(x)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return {
        "seconds_per_image": min(times),
        "threads": torch.get_num_threads(),
        "peak_rss_gib": peak_rss_gib(),
    }


def bench_tiled(tile: int) -> dict:
    import jax
    import numpy as np
    import skimage.data
    from PIL import Image

    sys.path.insert(0, ROOT)
    from deblurgan_jax.networks import inference, models

    photo = np.asarray(
        Image.fromarray(skimage.data.coffee()).resize((BIG_WIDTH, BIG_HEIGHT), Image.BICUBIC)
    )
    x = (photo.astype(np.float32) / 127.5 - 1.0)[None]
    del photo
    g = models.build_generator(models.DEFAULT_GENERATOR_CONFIG)  # conv_impl auto
    params = g.init(jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))["params"]
    before = peak_rss_gib()
    start = time.perf_counter()
    y = inference.restore_tiled(g, params, x, tile=tile)
    seconds = time.perf_counter() - start
    assert y.shape == x.shape and np.all(np.isfinite(y))
    return {
        "image": f"{BIG_WIDTH}x{BIG_HEIGHT}",
        "tile": tile,
        "overlap": inference.default_tile_overlap(g.n_blocks),
        "num_tiles": len(
            inference.tile_grid(
                BIG_HEIGHT, BIG_WIDTH, tile, inference.default_tile_overlap(g.n_blocks)
            )
        ),
        "seconds": seconds,
        "peak_rss_gib": peak_rss_gib(),
        "peak_rss_before_inference_gib": before,
    }


def run_child(kind: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        kind,
        "--repeats",
        str(args.repeats),
        "--tile",
        str(args.tile),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": r.stderr[-2000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=1, help="timed runs after one warm-up")
    p.add_argument("--tile", type=int, default=1024, help="tile side for the 4000x3000 photo")
    p.add_argument("--skip-tiled", action="store_true", help="skip the 4000x3000 measurement")
    p.add_argument("--child", choices=("jax", "torch", "tiled"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        result = {
            "jax": lambda: bench_jax(args.repeats),
            "torch": lambda: bench_torch(args.repeats),
            "tiled": lambda: bench_tiled(args.tile),
        }[args.child]()
        print(json.dumps(result))
        return
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "image": f"{WIDTH}x{HEIGHT}",
        "generator": "ngf 64, 9 blocks (11,372,931 params)",
        "repeats": args.repeats,
        "jax": run_child("jax", args),
        "torch": run_child("torch", args),
    }
    if "seconds_per_image" in result["jax"] and "seconds_per_image" in result["torch"]:
        result["jax_over_torch"] = (
            result["jax"]["seconds_per_image"] / result["torch"]["seconds_per_image"]
        )
    if not args.skip_tiled:
        result["tiled"] = run_child("tiled", args)
        if "peak_rss_gib" in result["tiled"]:
            result["tiled"]["within_4_gib"] = result["tiled"]["peak_rss_gib"] <= 4.0
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

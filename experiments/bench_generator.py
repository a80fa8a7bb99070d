"""Generator forward time on CPU: deblurgan-jax (jitted, after warm-up) vs the same architecture
in PyTorch (the reference in tests/torch_reference.py), at 1x256x256x3 and 1x720x1280x3.

Prints one JSON object. Peak memory is measured per framework in a fresh subprocess (ru_maxrss,
the process's peak resident set), so one framework's allocations do not hide the other's.
Usage: python experiments/bench_generator.py [--repeats 5] [--sizes 256x256,720x1280]
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


def time_jax(h, w, repeats):
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, ROOT)
    from deblurgan_jax.networks import models

    net = models.build_generator(models.DEFAULT_GENERATOR_CONFIG)  # conv_impl auto
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, h, w, 3)), jnp.float32)
    params = net.init(jax.random.key(0), x[:, :64, :64])["params"]
    fwd = jax.jit(lambda p, x: net.apply({"params": p}, x, deterministic=True))
    t0 = time.perf_counter()
    jax.block_until_ready(fwd(params, x))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fwd(params, x))
        times.append(time.perf_counter() - t0)
    return {
        "median_s": sorted(times)[len(times) // 2],
        "min_s": min(times),
        "first_call_s": compile_s,
        "conv_impl": net.conv_impl,
    }


def time_torch(h, w, repeats):
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import torch_reference as ref

    net = ref.ResnetGenerator().eval()
    x = torch.rand(1, 3, h, w) * 2 - 1
    times = []
    with torch.inference_mode():
        net(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return {
        "median_s": sorted(times)[len(times) // 2],
        "min_s": min(times),
        "threads": torch.get_num_threads(),
    }


def child(framework, h, w, repeats):
    out = (time_jax if framework == "jax" else time_torch)(h, w, repeats)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", default="256x256,720x1280", help="HxW list")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        fw, h, w = args.child
        return child(fw, int(h), int(w), args.repeats)
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "batch": 1,
        "model": "ResnetGenerator(ngf=64, n_blocks=9)",
        "sizes": {},
    }
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    for size in args.sizes.split(","):
        h, w = map(int, size.split("x"))
        row = {}
        for fw in ("jax", "torch"):
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--repeats",
                    str(args.repeats),
                    "--child",
                    fw,
                    str(h),
                    str(w),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            row[fw] = json.loads(r.stdout.strip().splitlines()[-1])
        row["jax_over_torch"] = row["jax"]["median_s"] / row["torch"]["median_s"]
        row["target_ratio"] = 0.8
        results["sizes"][size] = row
    import jax
    import torch

    results["versions"] = {"jax": jax.__version__, "torch": torch.__version__}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

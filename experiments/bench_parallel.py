"""Data-parallel training throughput on 1, 2, 4 and 8 devices; prints one JSON object.

  python experiments/bench_parallel.py [--config tiny|demo] [--batch_size 8] [--steps 20]

On a CPU-only machine the devices are fake (XLA_FLAGS=--xla_force_host_platform_device_count=N,
one subprocess per count, since the count is fixed when JAX starts): they share the same cores,
so the numbers show that the drivers run and what their overhead is, not a speed-up. On a GPU
host the same command measures the real devices (counts above the local device count are
skipped). Timed: sharding the host batch onto the devices plus the compiled step, after two
warm-up steps; the batch is random (the input pipeline is benchmarked in bench_pipeline.py).
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_COUNTS = (1, 2, 4, 8)


def measure(config_name: str, num_devices: int, batch_size: int, steps: int) -> dict:
    """Throughput of each driver on `num_devices` devices of this process."""
    sys.path.insert(0, ROOT)
    import importlib

    import jax
    import numpy as np

    from deblurgan_jax import config as config_lib
    from deblurgan_jax.training import parallel, train

    info = {"backend": jax.default_backend(), "local_devices": jax.local_device_count()}
    if num_devices > jax.local_device_count():
        return dict(info, skipped=f"only {jax.local_device_count()} devices")
    config = importlib.import_module(f"configs.{config_name}").get_config()
    config.batch_size = batch_size
    config.critic_batches = "shared"
    feature_params, preprocess = train.load_feature_params(config)
    networks = train.create_networks(config, preprocess)
    host_state = jax.device_get(train.create_train_state(config, networks))
    rng = np.random.default_rng(0)
    shape = (batch_size, config.crop_size, config.crop_size, 3)
    batch = {k: rng.uniform(-1, 1, shape).astype(np.float32) for k in ("blurred", "sharp")}
    drivers = {}
    for driver in ("single",) if num_devices == 1 else config_lib.PARALLEL_DRIVERS:
        config.parallel = "sharding" if driver == "single" else driver
        config.num_devices = num_devices
        plan = parallel.create(config)
        step = plan.compile_step(
            functools.partial(train.train_step, networks=networks, config=config)
        )
        state, features = plan.replicate(host_state), plan.replicate(feature_params)
        for _ in range(2):
            state, metrics = step(state, plan.shard_batch(batch), features)
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = step(state, plan.shard_batch(batch), features)
        jax.block_until_ready((state, metrics))
        seconds = time.perf_counter() - start
        drivers[driver] = {
            "pairs_per_s": round(batch_size * steps / seconds, 2),
            "ms_per_step": round(1000 * seconds / steps, 1),
        }
    return dict(info, n_critic=config.n_critic, drivers=drivers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tiny", help="configs/<name>.py (default: tiny)")
    parser.add_argument("--batch_size", type=int, default=8, help="global batch (default 8)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(args.config, args.child, args.batch_size, args.steps)
        print("RESULT " + json.dumps(result))
        return

    out = {
        "config": args.config,
        "global_batch": args.batch_size,
        "timed_steps": args.steps,
        "cpu_cores": os.cpu_count(),
        "pairs_per_s": {},
        "ms_per_step": {},
    }
    with tempfile.TemporaryDirectory() as cache:
        for n in DEVICE_COUNTS:
            env = dict(
                os.environ,
                TF_CPP_MIN_LOG_LEVEL="2",
                # N fake devices when JAX runs on the CPU (ignored by a GPU backend).
                XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
                # Each child compiles the same initialisers: share them.
                JAX_COMPILATION_CACHE_DIR=cache,
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
            )
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(n),
                    "--config",
                    args.config,
                    "--batch_size",
                    str(args.batch_size),
                    "--steps",
                    str(args.steps),
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
            if r.returncode or not lines:
                out["pairs_per_s"][str(n)] = f"failed: {r.stderr.strip().splitlines()[-1:]}"
                continue
            result = json.loads(lines[-1][len("RESULT ") :])
            out["backend"] = result["backend"]
            out["fake_cpu_devices"] = result["backend"] == "cpu"
            if "skipped" in result:
                out["pairs_per_s"][str(n)] = result["skipped"]
                continue
            out["n_critic"] = result["n_critic"]
            for driver, m in result["drivers"].items():
                out["pairs_per_s"].setdefault(str(n), {})[driver] = m["pairs_per_s"]
                out["ms_per_step"].setdefault(str(n), {})[driver] = m["ms_per_step"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()

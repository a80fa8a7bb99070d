"""Subprocess side of tests/test_parallel.py (and experiments/bench_parallel.py).

The fake CPU device count must be set before JAX starts, so each check runs in a fresh process
started with XLA_FLAGS=--xla_force_host_platform_device_count=N and prints one JSON line.

  python tests/parallel_worker.py eight WORKDIR   # 8 devices vs 1; checkpoint 8 -> 1 and 4
  python tests/parallel_worker.py train WORKDIR OUT_PREFIX pmap,sharding [key=value ...]
"""

import functools
import json
import os
import resource
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import tiny  # noqa: E402
from deblurgan_jax.weights import checkpoints  # noqa: E402
from deblurgan_jax.data import pipeline  # noqa: E402
from deblurgan_jax.training import parallel, train  # noqa: E402

DRIVERS = ("pmap", "sharding")


def flat_params(state) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves_with_path({"g": state.g_params, "d": state.d_params})
    return {jax.tree_util.keystr(path): np.asarray(x) for path, x in leaves}


def max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def replicas_identical(tree) -> bool:
    """Every device's copy of every leaf is bitwise the same."""
    for x in jax.tree_util.tree_leaves(tree):
        shards = [np.asarray(s.data) for s in x.addressable_shards]
        if any(not np.array_equal(shards[0], s) for s in shards[1:]):
            return False
    return True


def apply_overrides(config, overrides: list[str]):
    for item in overrides:
        key, value = item.lstrip("-").split("=", 1)
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = (
            type(node[leaf])(value)
            if not isinstance(node[leaf], bool)
            else (value.lower() in ("1", "true"))
        )
    return config


def equivalence() -> tuple[dict, dict]:
    """Two steps on 8 devices vs one device with the same global batches of 8.

    Returns the comparison and the 8-device states of the 'shared' runs (by driver).
    """
    results, states = {}, {}
    for critic_batches in ("shared", "fresh"):
        config = equivalence_config(critic_batches)
        fresh = critic_batches == "fresh"
        networks = train.create_networks(config)
        host_state = jax.device_get(train.create_train_state(config, networks))
        per_step = config.batch_size * (config.n_critic if fresh else 1)
        dataset = pipeline.create_train_dataset(
            config.data, batch_size=per_step, crop_size=config.crop_size, seed=0
        )
        batches = iter(dataset)
        rng = np.random.default_rng(0)
        steps = []
        for _ in range(2):
            batch = next(batches)
            if fresh:
                batch = {
                    k: v.reshape((config.n_critic, config.batch_size) + v.shape[1:])
                    for k, v in batch.items()
                }
            alpha = rng.uniform(size=(config.n_critic, config.batch_size)).astype(np.float32)
            steps.append((batch, alpha))
        # Closed now, not whenever it is garbage-collected: a tf.data iterator left idle can take
        # seconds to close (its autotuning thread sleeps ever longer between rounds).
        dataset.close()

        single = train.make_train_step(config, networks)
        state = jax.device_put(host_state, jax.devices()[0])
        for batch, alpha in steps:
            state, ref_metrics = single(state, batch, None, alpha=alpha)
        ref = flat_params(state)
        ref_metrics = train._host_metrics(ref_metrics)

        for driver in DRIVERS:
            config.parallel, config.num_devices = driver, 8
            plan = parallel.create(config)
            axis = 1 if fresh else 0
            step = plan.compile_step(
                functools.partial(train.train_step, networks=networks, config=config), axis
            )
            state = plan.replicate(host_state)
            for batch, alpha in steps:
                state, metrics = step(
                    state,
                    plan.shard_batch(batch, axis),
                    None,
                    alpha=plan.shard_batch(alpha, axis=1),
                )
            metrics = train._host_metrics(plan.local_copy(metrics))
            results[f"{driver}/{critic_batches}"] = {
                "driver": plan.driver,
                "num_devices": plan.num_devices,
                "max_param_diff": max_diff(flat_params(plan.local_copy(state)), ref),
                "metric_rel_diff": {
                    k: abs(metrics[k] - v) / max(abs(v), 1e-6) for k, v in ref_metrics.items()
                },
                "replicas_identical": replicas_identical(state),
                "step": int(plan.local_copy(state.step)),
            }
            if not fresh:
                states[driver] = (plan, state)
    return results, states


def equivalence_config(critic_batches: str = "shared"):
    config = tiny.get_config()
    config.model.conv_impl = "xla"  # see test_parallel._env
    config.model.dropout_rate = 0.0
    config.batch_size = 8
    config.critic_batches = critic_batches
    return config


def checkpoint(workdir: str, states: dict) -> dict:
    """The 8-device states -> checkpoint -> restore on 1 and on 4 devices; then the training
    loop resumes the 'sharding' checkpoint on 4 devices with the 'pmap' driver."""
    results = {}
    config = equivalence_config()
    networks = train.create_networks(config)
    for driver, (plan, state) in states.items():
        run_dir = os.path.join(workdir, driver)
        trained = flat_params(plan.local_copy(state))
        manager = checkpoints.checkpoint_manager(run_dir, config.max_to_keep)
        checkpoints.save_checkpoint(manager, plan.to_single_copy(state))
        manager.wait_until_finished()
        result = {"latest_step": manager.latest_step()}
        for n in (1, 4):
            config.parallel, config.num_devices = driver, n
            plan_n = parallel.create(config)
            template = plan_n.place_single_copy(train.create_train_state(config, networks))
            restored = plan_n.from_single_copy(checkpoints.restore_checkpoint(manager, template))
            result[f"restored_on_{n}"] = {
                "driver": plan_n.driver,
                "max_param_diff": max_diff(flat_params(plan_n.local_copy(restored)), trained),
                "replicas_identical": replicas_identical(restored),
                "step": int(plan_n.local_copy(restored.step)),
            }
        manager.close()
        results[driver] = result
    config.parallel, config.num_devices, config.num_steps = "pmap", 4, 3
    resumed = train.train_and_evaluate(config, os.path.join(workdir, "sharding"), progress=False)
    results["resumed_on_4_step"] = int(resumed.step)
    return results


def train_runs(workdir: str, out_prefix: str, drivers: str, overrides: list[str]) -> dict:
    """Trains the tiny config (overridden) with each driver; saves the params to
    `{out_prefix}{driver}.npz` and says which files this process wrote."""
    results = {}
    for driver in drivers.split(","):
        config = apply_overrides(
            tiny.get_config(), overrides + [f"parallel={driver}", "model.conv_impl=xla"]
        )
        # The first call starts jax.distributed: nothing may touch JAX's backend before it.
        state = train.train_and_evaluate(config, os.path.join(workdir, driver), progress=False)
        np.savez(f"{out_prefix}{driver}.npz", **flat_params(state))
        results[driver] = {"step": int(state.step)}
    return dict(
        results,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        device_count=jax.device_count(),
    )


def main(argv: list[str]) -> None:
    mode = argv[1]
    if mode == "eight":
        equivalent, states = equivalence()
        result = {"equivalence": equivalent, "checkpoint": checkpoint(argv[2], states)}
    elif mode == "train":
        result = train_runs(argv[2], argv[3], argv[4], argv[5:])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)

"""Data-parallel training on fake CPU devices: 8 devices equal one, checkpoints move between
device counts, and two processes (jax.distributed, gloo CPU collectives) equal one process.

The fake device count must be set before JAX starts, so every check runs tests/parallel_worker.py
in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=N.
"""

import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "parallel_worker.py")
DRIVERS = ("pmap", "sharding")


def _env(num_devices: int, cache_dir: str) -> dict[str, str]:
    # The workers use config.model.conv_impl='xla' (parallel_worker.py): these tests compare
    # shardings of one step to ~1e-5, which holds for XLA's convolutions; Winograd's rounding
    # changes with the per-device batch (tests/test_conv_ops.py checks Winograd itself).
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        # conftest's compile flags, N fake devices, and single-threaded convolutions: the fake
        # devices already run side by side on the 2 cores, and Eigen's own threads on top of
        # them only wait on each other (README, "Measured design choices").
        XLA_FLAGS=(
            f"{os.environ.get('XLA_FLAGS', '')} "
            f"--xla_force_host_platform_device_count={num_devices} "
            "--xla_cpu_multi_thread_eigen=false"
        ).strip(),
        # The workers compile the same initialisers: share them (this session's own cache,
        # so nothing stale; conftest's threshold for what is worth writing).
        JAX_COMPILATION_CACHE_DIR=cache_dir,
    )
    env.pop("JAX_COORDINATOR_ADDRESS", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class Worker:
    """A tests/parallel_worker.py subprocess and, once it ends, its RESULT json and stdout."""

    def __init__(self, num_devices: int, cache_dir: str, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, *args],
            cwd=ROOT,
            env=_env(num_devices, cache_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._done = None

    def result(self, timeout: float = 600) -> tuple[dict, str]:
        if self._done is None:
            try:
                out, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
            assert self.proc.returncode == 0, (
                f"worker failed ({self.proc.returncode}):\n{err[-4000:]}"
            )
            lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
            assert lines, f"no RESULT line in:\n{out[-2000:]}\n{err[-2000:]}"
            self._done = json.loads(lines[-1][len("RESULT ") :]), out
        return self._done


TRAIN_ARGS = ("batch_size=4", "num_steps=3", "checkpoint_every=3", "log_every=1")


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """The subprocesses, two at a time on the 2 cores:
    'eight': equivalence and checkpoint checks in one 8-device process, beside
    'ref': 3 steps of training in one process on 4 devices ('sharding'; the drivers agree to
      rounding, test_eight_devices_equal_one_device), then
    'p0', 'p1': the same training on two processes x 2 devices (jax.distributed on localhost),
    which find the initialisers 'ref' compiled in the shared compilation cache."""
    root = tmp_path_factory.mktemp("parallel")
    cache = str(root / "jax_cache")
    drivers = ",".join(DRIVERS)
    procs = {
        "eight": Worker(8, cache, "eight", str(root / "eight")),
        "ref": Worker(
            4,
            cache,
            "train",
            str(root / "single"),
            str(root / "ref_"),
            "sharding",
            *TRAIN_ARGS,
            "num_devices=4",
        ),
    }
    try:
        procs["ref"].result()
        address = f"localhost:{_free_port()}"
        for i in range(2):
            procs[f"p{i}"] = Worker(
                2,
                cache,
                "train",
                str(root / "multi"),
                str(root / f"p{i}_"),
                drivers,
                *TRAIN_ARGS,
                f"distributed.coordinator_address={address}",
                "distributed.num_processes=2",
                f"distributed.process_id={i}",
            )
        yield root, procs
    finally:
        for worker in procs.values():
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.communicate()


@pytest.fixture(scope="module")
def eight_devices(workers):
    return workers[1]["eight"].result()[0]


@pytest.mark.parametrize("critic_batches", ["shared", "fresh"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_eight_devices_equal_one_device(eight_devices, driver, critic_batches):
    """Two steps on 8 devices (global batch 8, one example per device) = two steps on one device
    with the same batch (dropout off, the penalty's alpha fixed): all the step's losses are means
    over equal-sized shards, so the mean of the per-device means is the global mean."""
    r = eight_devices["equivalence"][f"{driver}/{critic_batches}"]
    assert (r["driver"], r["num_devices"], r["step"]) == (driver, 8, 2)
    assert r["max_param_diff"] < 1e-5, r
    # The gradient norms would be 8x (the sum, not the mean) if the replicated params'
    # gradients were summed across devices; Adam alone would hide that in the params.
    for name, rel in r["metric_rel_diff"].items():
        assert rel < (1e-3 if name == "wasserstein" else 1e-4), (name, r)
    assert r["replicas_identical"], "the replicated state differs between devices"


@pytest.mark.parametrize("driver", DRIVERS)
def test_checkpoint_from_eight_devices_restores_on_one_and_four(eight_devices, driver):
    """The state after two 8-device steps, saved (one copy), restores exactly on 1 and 4."""
    r = eight_devices["checkpoint"][driver]
    assert r["latest_step"] == 2
    for n, want_driver in ((1, "single"), (4, driver)):
        restored = r[f"restored_on_{n}"]
        assert (restored["driver"], restored["step"]) == (want_driver, 2)
        assert restored["max_param_diff"] == 0.0, restored
        assert restored["replicas_identical"]


def test_training_loop_resumes_eight_device_checkpoint_on_four(eight_devices):
    # The 'sharding' run's checkpoint, resumed by train_and_evaluate with 'pmap' on 4 devices.
    assert eight_devices["checkpoint"]["resumed_on_4_step"] == 3


def test_two_processes_equal_one_process(workers):
    """jax.distributed on localhost, 2 processes x 2 devices, 3 steps of the tiny config with
    dropout on: both processes end with the same params, equal to one process on 4 devices
    (the device index folded into the RNG is global, so every device draws the same numbers)."""
    root, procs = workers
    results = [procs[f"p{i}"].result() for i in range(2)]
    ref_result, ref_out = procs["ref"].result()
    for i, (r, out) in enumerate(results):
        assert (r["process_index"], r["process_count"], r["device_count"]) == (i, 2, 4)
        # Only process 0 logs; its losses (per driver, per step) are the 4-device run's.
        if i == 0:
            ref_losses = _logged_losses(ref_out)
            assert len(ref_losses) == 3
            losses = _logged_losses(out)
            np.testing.assert_allclose(
                losses, np.concatenate([ref_losses] * len(DRIVERS)), rtol=1e-3, atol=1e-6
            )
        else:
            assert _logged_losses(out).size == 0, out[-2000:]
    assert ref_result["process_count"] == 1 and ref_result["device_count"] == 4
    for driver in DRIVERS:
        assert all(r[driver]["step"] == 3 for r, _ in results)
        p0, p1 = (np.load(root / f"p{i}_{driver}.npz") for i in range(2))
        ref = np.load(root / "ref_sharding.npz")
        assert sorted(p0.files) == sorted(p1.files) == sorted(ref.files)
        close = total = 0
        for key in ref.files:
            np.testing.assert_array_equal(p0[key], p1[key], err_msg=key)
            # Cross-process all-reduces add in another order than in-process ones; Adam's
            # g / sqrt(v) turns that rounding into visible steps where gradients nearly cancel.
            # Half an Adam step (lr 1e-4) still catches a gradient summed or left out.
            np.testing.assert_allclose(p0[key], ref[key], atol=5e-5, rtol=0, err_msg=key)
            close += int(np.sum(np.abs(p0[key] - ref[key]) <= 1e-6))
            total += ref[key].size
        assert close >= 0.98 * total, (driver, close, total)
        workdir = root / "multi" / driver
        # One TensorBoard writer (process 0) and one checkpoint, written by both processes.
        assert len(glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))) == 1
        assert sorted(os.listdir(workdir / "checkpoints")) == ["3"]


def _logged_losses(stdout: str) -> np.ndarray:
    """The numbers of the loop's 'step N: name value, ...' lines, one row per line."""
    rows = [
        [float(item.split()[-1]) for item in line.split(": ", 1)[1].split(", ")]
        for line in stdout.splitlines()
        if line.startswith("step ")
    ]
    return np.array(rows)

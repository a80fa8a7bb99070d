"""Training: determinism, exact resume, a SIGKILL during an async save, non-finite losses, and
that the model can learn (tiny networks, CPU)."""

import functools
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compile_levels import compile_to_run_many
from flax import linen as nn

from configs import tiny
from deblurgan_jax.weights import checkpoints
from deblurgan_jax.data import pipeline
from deblurgan_jax.networks import inference, models
from deblurgan_jax.evaluation import metrics
from deblurgan_jax.training import parallel, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _params(state):
    return jax.tree_util.tree_map(np.asarray, {"g": state.g_params, "d": state.d_params})


def _assert_same(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """6 steps of the tiny config, checkpoints every 2 steps."""
    workdir = str(tmp_path_factory.mktemp("straight"))
    state = train.train_and_evaluate(tiny.get_config(), workdir, progress=False)
    return workdir, _params(state)


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    """The same 6 steps again in another folder (shared by the determinism and resume tests)."""
    workdir = str(tmp_path_factory.mktemp("second"))
    state = train.train_and_evaluate(tiny.get_config(), workdir, progress=False)
    return workdir, _params(state)


def test_same_seed_same_params(straight_run, second_run, tmp_path):
    _, want = straight_run
    _assert_same(second_run[1], want)
    # A different seed gives different params (the test can fail).
    config = tiny.get_config()
    config.seed = 1
    config.num_steps = 2
    other = train.train_and_evaluate(config, str(tmp_path / "seed1"), progress=False)
    assert not np.array_equal(
        np.asarray(jax.tree_util.tree_leaves(other.g_params)[0]),
        jax.tree_util.tree_leaves(want["g"])[0],
    )


def test_resume_from_checkpoint_is_exact(straight_run, second_run, tmp_path, capsys):
    _, want = straight_run
    workdir = str(tmp_path / "run")
    shutil.copytree(second_run[0], workdir)  # a finished 6-step run of its own
    # Drop the checkpoint of step 6, as if the run had been killed right after step 4 (the
    # tiny config keeps the latest two: 4 and 6).
    ckpts = os.path.join(workdir, "checkpoints")
    assert sorted(n for n in os.listdir(ckpts) if n.isdigit()) == ["4", "6"]
    for name in os.listdir(ckpts):
        if name.isdigit() and int(name) > 4:
            subprocess.run(["rm", "-rf", os.path.join(ckpts, name)], check=True)
    capsys.readouterr()
    state = train.train_and_evaluate(tiny.get_config(), workdir, progress=False)
    assert "resumed from step 4" in capsys.readouterr().out
    assert int(state.step) == 6
    _assert_same(_params(state), want)


def test_fresh_and_resumed_runs_share_one_compiled_step(straight_run):
    """A restored checkpoint's arrays are committed to the device, and a fresh state is placed
    the same way: both lower to one program, so a resumed run finds its step compiled (in
    memory, and across processes in the persistent cache) instead of compiling it again."""
    workdir, _ = straight_run
    config = tiny.get_config()
    networks = train.create_networks(config)
    plan = parallel.create(config)
    fresh = plan.place_single_copy(train.create_train_state(config, networks))
    manager = checkpoints.checkpoint_manager(workdir, config.max_to_keep)
    restored = checkpoints.restore_checkpoint(manager, fresh)
    manager.close()
    assert int(restored.step) == 6
    step = plan.compile_step(functools.partial(train.train_step, networks=networks, config=config))
    batch = {k: np.zeros((2, 32, 32, 3), np.float32) for k in ("blurred", "sharp")}
    assert step.lower(fresh, batch, None).as_text() == step.lower(restored, batch, None).as_text()


def test_sigkill_during_async_save_then_restart(straight_run, tmp_path, capsys):
    _, want = straight_run
    workdir = tmp_path / "run"
    cmd = [
        sys.executable,
        "train.py",
        "--config",
        "configs/tiny.py",
        "--workdir",
        str(workdir),
        "--config.checkpoint_every=1",
        "--noprogress",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts = workdir / "checkpoints"
    killed_mid_save = False
    deadline = time.time() + 240
    try:
        while proc.poll() is None and time.time() < deadline:
            names = os.listdir(ckpts) if ckpts.is_dir() else []
            # Orbax writes a step to '<step>.orbax-checkpoint-tmp*' and renames it when complete.
            if any("tmp" in n for n in names) and any(n.isdigit() for n in names):
                proc.send_signal(signal.SIGKILL)
                killed_mid_save = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed_mid_save:
            proc.kill()
        proc.wait()
    assert killed_mid_save, "never saw an unfinished save to kill (or the run ended first)"
    leftovers = [n for n in os.listdir(ckpts) if "tmp" in n]
    assert leftovers, "the kill should have left an unfinished checkpoint behind"
    # The restart runs in-process (the same code path as the command, without a second
    # interpreter start-up and compilation).
    config = tiny.get_config()
    config.checkpoint_every = 1
    capsys.readouterr()
    state = train.train_and_evaluate(config, str(workdir), progress=False)
    assert int(state.step) == config.num_steps
    assert "resumed from step" in capsys.readouterr().out
    state_params = checkpoints.load_generator_from_workdir(str(workdir))[0]
    _assert_same(jax.tree_util.tree_map(np.asarray, state_params), want["g"])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    config = tiny.get_config()
    config.num_steps = 2
    workdir = str(tmp_path)
    train.train_and_evaluate(config, workdir, progress=False)
    good = checkpoints.load_generator_from_workdir(workdir)[0]
    config.num_steps = 6
    nan_schedule = lambda cfg: lambda step: jnp.float32(jnp.nan)  # noqa: E731
    monkeypatch.setattr(train, "learning_rate_schedule", nan_schedule)
    with pytest.raises(train.NonFiniteLossError, match="non-finite"):
        train.train_and_evaluate(config, workdir, progress=False)
    params, _, provenance = checkpoints.load_generator_from_workdir(workdir)
    assert provenance["step"] == 2
    _assert_same(params, good)


def test_cli_reports_non_finite_loss_and_bad_config(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--config",
            "configs/tiny.py",
            "--workdir",
            str(tmp_path),
            "--config.data.source=nope",
            "--noprogress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    assert "error:" in r.stderr and "nope" in r.stderr and "Traceback" not in r.stderr


def test_tiny_model_learns_a_fixed_batch():
    config = tiny.get_config()
    config.n_critic = 1
    config.learning_rate = 1e-3
    config.num_steps = 150
    batches = pipeline.create_train_dataset(
        config.data, batch_size=config.batch_size, crop_size=config.crop_size, seed=0
    )
    batch = {k: jnp.asarray(v) for k, v in next(iter(batches)).items()}
    batches.close()
    networks = train.create_networks(config)
    state = train.create_train_state(config, networks)
    # Run 150 times: compiled at level 1 (the suite's is 0, see compile_levels.py).
    step = compile_to_run_many(train.make_train_step(config, networks), state, batch, None)
    restore = inference.make_restore_fn(networks.generator)
    sharp8 = metrics.to_uint8_range(batch["sharp"])

    def restored_psnr(params):
        out = metrics.to_uint8_range(restore(params, batch["blurred"]))
        return float(jnp.mean(metrics.psnr(out, sharp8)))

    psnr_before = restored_psnr(state.g_params)
    first = None
    for _ in range(config.num_steps):
        state, step_metrics = step(state, batch, None)
        first = first or float(step_metrics["g_content"])
    last = float(step_metrics["g_content"])
    psnr_after = restored_psnr(state.g_params)
    assert last < 0.5 * first, (first, last)
    assert psnr_after > psnr_before + 3.0, (psnr_before, psnr_after)


def test_initial_state_draws_the_papers_initialisation():
    """create_train_state compiles the initialisers as one program: the draws still follow
    the paper's N(0, 0.02) for every convolution kernel, zeros for the biases, InstanceNorm
    without parameters, a fresh Adam, the EMA a copy of the generator (not the same buffer)."""
    config = tiny.get_config()
    config.ema_decay = 0.9
    networks = train.create_networks(config)
    state = train.create_train_state(config, networks)
    assert int(state.step) == 0
    kernels = []
    for path, leaf in jax.tree_util.tree_leaves_with_path((state.g_params, state.d_params)):
        name = jax.tree_util.keystr(path)
        leaf = np.asarray(leaf)
        if name.endswith("['kernel']"):
            kernels.append(leaf.ravel())
        else:
            assert name.endswith("['bias']") and not leaf.any(), name
    kernels = np.concatenate(kernels)
    assert kernels.size > 10_000
    # Sample mean and std of n normal draws: within 5 standard errors of 0 and 0.02.
    assert abs(kernels.mean()) < 5 * 0.02 / np.sqrt(kernels.size)
    assert abs(kernels.std() - 0.02) < 5 * 0.02 / np.sqrt(2 * kernels.size)
    for opt_state in (state.g_opt_state, state.d_opt_state):
        assert int(opt_state.inner_state[0].count) == 0
        moments = jax.tree_util.tree_leaves(opt_state.inner_state[0][1:])  # mu, nu
        assert moments and not any(np.asarray(x).any() for x in moments)
    for ema, g in zip(
        jax.tree_util.tree_leaves(state.ema_params), jax.tree_util.tree_leaves(state.g_params)
    ):
        np.testing.assert_array_equal(ema, g)
        assert ema.unsafe_buffer_pointer() != g.unsafe_buffer_pointer()
    # One draw op by op, and compiled: the same bits as flax's N(0, 0.02) initializer (without
    # the barrier in models.CONV_INIT, XLA folds the constants and a quarter move by one ulp).
    key, shape = jax.random.key(3), (3, 3, 32, 32)
    op_by_op = nn.initializers.normal(stddev=0.02)(key, shape)
    np.testing.assert_array_equal(models.CONV_INIT(key, shape), op_by_op)
    np.testing.assert_array_equal(jax.jit(models.CONV_INIT, static_argnums=1)(key, shape), op_by_op)
    # The same seed draws the same state; another seed draws another.
    again = train.create_train_state(config, networks)
    for a, b in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(a, b)
    config.seed = 1
    other = train.create_train_state(config, networks)
    assert not np.array_equal(
        jax.tree_util.tree_leaves(other.g_params)[0], jax.tree_util.tree_leaves(state.g_params)[0]
    )


def test_pixel_l1_term_joins_the_generator_loss():
    config = tiny.get_config()
    config.model.dropout_rate = 0.0  # the step's generator output is then the deterministic one
    config.loss.pixel_l1_weight = 7.0
    networks = train.create_networks(config)
    state = train.create_train_state(config, networks)
    rng = np.random.default_rng(0)
    batch = {
        k: jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
        for k in ("blurred", "sharp")
    }
    restored = networks.generator.apply({"params": state.g_params}, batch["blurred"])
    want = np.mean(np.abs(np.asarray(restored) - np.asarray(batch["sharp"])))
    _, step_metrics = train.make_train_step(config, networks)(state, batch, None)
    np.testing.assert_allclose(float(step_metrics["g_pixel_l1"]), want, rtol=1e-5)
    total = (
        config.loss.adversarial_weight * step_metrics["g_adversarial"]
        + config.loss.content_weight * step_metrics["g_content"]
        + 7.0 * want
    )
    np.testing.assert_allclose(float(step_metrics["g_loss"]), float(total), rtol=1e-5)

"""Export: params file from a training run (latest/best) reloaded in a fresh process, the TF
SavedModel and the ONNX model against the JAX generator, and clear errors for bad params."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
import torch

from configs import tiny
from command_runner import run_main
from deblurgan_jax.weights import checkpoints, serving, torch_weights
from deblurgan_jax.commands import export
from deblurgan_jax.networks import inference, models
from deblurgan_jax.evaluation import metrics
from deblurgan_jax.training import train
import torch_reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args):
    return run_main(export.main, *args)


def _subprocess_cli(*args):
    """The command as a user runs it (one smoke test; the others call main in-process)."""
    return subprocess.run(
        [sys.executable, "-m", "deblurgan_jax.export", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A training directory with two checkpoints: step 2 (eval PSNR 20, the best) and step 4
    (PSNR 10, the latest), written by the training code's own checkpoint functions."""
    path = str(tmp_path_factory.mktemp("run"))
    config = tiny.get_config()
    with open(os.path.join(path, checkpoints.CONFIG_FILE), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    state = train.create_train_state(config, train.create_networks(config))
    manager = checkpoints.checkpoint_manager(path, config.max_to_keep)
    checkpoints.save_checkpoint(
        manager, state.replace(step=jnp.asarray(2, jnp.int32)), {"eval_psnr": 20.0}
    )
    later = jax.tree_util.tree_map(lambda p: p + 0.01, state.g_params)
    checkpoints.save_checkpoint(
        manager, state.replace(step=jnp.asarray(4, jnp.int32), g_params=later), {"eval_psnr": 10.0}
    )
    manager.wait_until_finished()
    manager.close()
    return path, state.g_params, later


def _photos(n, h, w):
    coffee = skimage.data.coffee()
    return np.stack([coffee[i * 30 : i * 30 + h, i * 40 : i * 40 + w] for i in range(n)])


def _jax_uint8(params, config, images8):
    g = models.build_generator(config)
    x = jnp.asarray(images8, jnp.float32) / 127.5 - 1.0
    return np.asarray(metrics.to_uint8_range(inference.restore(g, params, x))).astype(np.uint8)


@pytest.mark.parametrize("which,step", [("latest", 4), ("best", 2)])
def test_params_export_reloads_in_a_fresh_process(workdir, tmp_path, which, step):
    path, best, latest = workdir
    out = tmp_path / "g.msgpack"
    r = _cli("--workdir", path, "--which", which, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"step {step}" in r.stdout
    config = json.loads((tmp_path / "g.json").read_text())
    assert config["ngf"] == 8 and config["n_blocks"] == 2
    params, _ = checkpoints.load_generator(str(out))
    want = best if which == "best" else latest
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A fresh process that knows nothing of the run restores the same image bit for bit.
    images8 = _photos(1, 40, 52)
    np.save(tmp_path / "in.npy", images8)
    script = (
        "import sys, numpy as np, jax.numpy as jnp\n"
        "from deblurgan_jax.networks import inference, models\n"
        "from deblurgan_jax.weights import checkpoints\n"
        "params, config = checkpoints.load_generator(sys.argv[1])\n"
        "g = models.build_generator(config)\n"
        "x = jnp.asarray(np.load(sys.argv[2]), jnp.float32) / 127.5 - 1\n"
        "np.save(sys.argv[3], np.asarray(inference.make_restore_fn(g)(params, x)))\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(out),
            str(tmp_path / "in.npy"),
            str(tmp_path / "out.npy"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    g = models.build_generator(config)
    x = jnp.asarray(images8, jnp.float32) / 127.5 - 1
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), np.asarray(inference.make_restore_fn(g)(want, x))
    )
    # Existing files are not replaced without --overwrite.
    r = _cli("--workdir", path, "--which", which, "--out", str(out))
    assert r.returncode == 2 and "--overwrite" in r.stderr


def test_saved_model_takes_uint8_of_any_size(workdir, tmp_path):
    path, _, latest = workdir
    out = tmp_path / "saved_model"
    r = _subprocess_cli("--workdir", path, "--out", str(out), "--format", "saved_model")
    assert r.returncode == 0, r.stderr
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    config = json.loads((tmp_path / "saved_model.json").read_text())
    assert config["export"]["platforms"] == ["cpu", "cuda"]
    for n, h, w in [(1, 37, 53), (2, 64, 48)]:
        images8 = _photos(n, h, w)
        got = serve(images=tf.constant(images8))["restored"].numpy()
        assert got.dtype == np.uint8 and got.shape == images8.shape
        want = _jax_uint8(latest, config, images8)
        assert np.abs(got.astype(int) - want).max() <= 1


@pytest.fixture(scope="module")
def official_params_file(tmp_path_factory):
    """Weights in the official PyTorch layout, converted: the path real DeblurGAN weights take."""
    torch.manual_seed(0)
    net = ref.randomize_biases(ref.ResnetGenerator(ngf=8, n_blocks=3), scale=0.5).eval()
    params, config = torch_weights.generator_params_from_state_dict(
        {k: v.numpy() for k, v in net.state_dict().items()}
    )
    path = str(tmp_path_factory.mktemp("official") / "official.msgpack")
    checkpoints.save_generator(params, config, path)
    return path


def test_onnx_matches_jax_at_two_sizes(official_params_file, tmp_path):
    import onnxruntime

    out = tmp_path / "g.onnx"
    r = _cli("--params", official_params_file, "--out", str(out), "--format", "onnx")
    assert r.returncode == 0, r.stderr
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    params, config = checkpoints.load_generator(official_params_file)
    for n, h, w in [(1, 37, 53), (2, 96, 128)]:
        images8 = _photos(n, h, w)
        (got,) = session.run(["restored"], {"images": images8})
        assert got.dtype == np.uint8 and got.shape == images8.shape
        assert np.abs(got.astype(int) - _jax_uint8(params, config, images8)).max() <= 1


def test_tf_generator_matches_the_flax_module(official_params_file):
    # The plain-TF rebuild that ONNX is made from, in float, before any rounding.
    params, config = checkpoints.load_generator(official_params_file)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 44, 3)).astype(np.float32)
    got = serving.tf_generator(params, config)(tf.constant(x)).numpy()
    want = inference.restore(models.build_generator(config), params, x)
    np.testing.assert_allclose(got, np.asarray(want), atol=2e-5)


@pytest.mark.parametrize("case", ["truncated", "wrong_config", "missing_workdir"])
def test_bad_sources_are_clear_errors(official_params_file, tmp_path, case):
    bad = tmp_path / "bad.msgpack"
    with open(official_params_file, "rb") as f:
        data = f.read()
    if case == "truncated":
        bad.write_bytes(data[: len(data) // 2])
        args = ["--params", str(bad)]
    elif case == "wrong_config":
        bad.write_bytes(data)
        (tmp_path / "bad.json").write_text(json.dumps({"ngf": 16, "n_blocks": 3}))
        args = ["--params", str(bad)]
    else:
        bad = tmp_path / "no_run"
        args = ["--workdir", str(bad)]
    r = _cli(*args, "--out", str(tmp_path / "out.msgpack"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and str(bad) in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out.msgpack").exists()
    if case == "wrong_config":
        assert (
            "block_0/conv_0/conv/kernel: shape (3, 3, 32, 32), expected (3, 3, 64, 64)" in r.stderr
        )

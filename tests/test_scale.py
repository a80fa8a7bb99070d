"""Training at scale: rematerialisation (same params, same results), the EMA of the generator's
weights (its recurrence, exact resume, export), bfloat16 compute (tracks float32, still learns)
and the one-shot accelerator check (`experiments/gpu_check.py --smoke`). Tiny networks, CPU."""

import importlib.util
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compile_levels import compile_to_run_many

from configs import tiny
from deblurgan_jax.weights import checkpoints
from deblurgan_jax.data import pipeline
from deblurgan_jax.commands import export
from deblurgan_jax.networks import inference, models
from deblurgan_jax.evaluation import metrics
from deblurgan_jax.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(**overrides):
    """The tiny config with one critic update per step (half the program to compile, the same
    code paths), and `overrides` ('a.b' keys)."""
    config = tiny.get_config()
    config.n_critic = 1
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return {
        k: jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
        for k in ("blurred", "sharp")
    }


_STEPS = {}


def one_step(batch, **overrides):
    """(initial params, state after one step, metrics) of the tiny config, computed once per
    setting in this module (each costs a compilation)."""
    key = tuple(sorted(overrides.items()))
    if key not in _STEPS:
        config = _tiny(**overrides)
        networks = train.create_networks(config)
        state = train.create_train_state(config, networks)
        before = jax.tree_util.tree_map(np.asarray, (state.g_params, state.d_params))
        after, step_metrics = train.make_train_step(config, networks)(state, batch, None)
        _STEPS[key] = (before, after, {k: float(v) for k, v in step_metrics.items()})
    return _STEPS[key]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


# ---------------------------------------------------------------------------------- remat


@pytest.mark.parametrize("remat", ["blocks", "full"])
def test_remat_keeps_parameter_names_and_values(remat):
    x = jnp.zeros((1, 32, 32, 3))
    for make in (
        lambda r: models.ResnetGenerator(ngf=8, n_blocks=2, remat=r),
        lambda r: models.PatchCritic(ndf=8, remat=r),
    ):
        plain = make("none").init(jax.random.key(0), x)["params"]
        wrapped = make(remat).init(jax.random.key(0), x)["params"]
        paths = lambda t: [  # noqa: E731
            jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(t)
        ]
        assert paths(wrapped) == paths(plain)
        for a, b in zip(_leaves(wrapped), _leaves(plain)):
            np.testing.assert_array_equal(a, b)
    # The VGG trunk of the perceptual loss: same params, and the same input gradient (what the
    # loss differentiates), before and after the last ReLU.
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
    for after_relu in (True, False):
        vgg = lambda r: models.VGGFeatures(after_relu=after_relu, remat=r)  # noqa: E731
        params = vgg("none").init(jax.random.key(0), x)["params"]
        assert jax.tree_util.tree_structure(
            vgg(remat).init(jax.random.key(0), x)["params"]
        ) == jax.tree_util.tree_structure(params)
        grads = [
            jax.grad(lambda y: jnp.sum(vgg(r).apply({"params": params}, y) ** 2))(x)
            for r in ("none", remat)
        ]
        np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-7)
    x = jnp.zeros((1, 32, 32, 3))
    # ... and the checkpointing is really in the traced program (the test can fail).
    g = models.ResnetGenerator(ngf=8, n_blocks=2, remat=remat)
    params = g.init(jax.random.key(0), x)["params"]
    jaxpr = str(
        jax.make_jaxpr(lambda p: jax.grad(lambda p: jnp.sum(g.apply({"params": p}, x)))(p))(params)
    )
    assert "checkpoint" in jaxpr or "remat" in jaxpr
    with pytest.raises(ValueError, match="remat"):
        models.ResnetGenerator(remat="sometimes").init(jax.random.key(0), x)


# 'full' nests the 'blocks' checkpoints, so cpu_fast x full (a minute to compile on this
# machine, measured equal to 4.1e-7) adds little over cpu_fast x blocks.
@pytest.mark.parametrize(
    "conv_impl, remat", [("xla", "blocks"), ("xla", "full"), ("cpu_fast", "blocks")]
)
def test_remat_step_equals_plain_step(batch, conv_impl, remat):
    """One full train step (critic updates with the gradient penalty's double backward, then
    the generator with dropout) gives the same params within 1e-6 (measured: <= 4.1e-7)."""
    _, plain, plain_metrics = one_step(batch, **{"model.conv_impl": conv_impl})
    _, rematted, remat_metrics = one_step(batch, **{"model.conv_impl": conv_impl, "remat": remat})
    for a, b in zip(
        _leaves((rematted.g_params, rematted.d_params)), _leaves((plain.g_params, plain.d_params))
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    for k, v in plain_metrics.items():
        np.testing.assert_allclose(remat_metrics[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_tiled_inference_of_a_remat_generator_equals_plain():
    """inference's tiled path applies `models.resnet_block_of(generator)` alone."""
    x = np.random.default_rng(1).uniform(-1, 1, (1, 48, 40, 3)).astype(np.float32)
    plain = models.ResnetGenerator(ngf=8, n_blocks=2, conv_impl="xla")
    params = plain.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    want = inference.make_inference_fn(plain, tile=24, overlap=8)(params, x)
    rematted = models.ResnetGenerator(ngf=8, n_blocks=2, conv_impl="xla", remat="blocks")
    got = inference.make_inference_fn(rematted, tile=24, overlap=8)(params, x)
    np.testing.assert_array_equal(got, want)


def test_keep_remat_barriers_only_before_jax_starts(monkeypatch):
    jax.devices()  # the backend runs (as after any earlier test), whatever the test order
    monkeypatch.setenv("XLA_FLAGS", "")
    assert not train.keep_remat_barriers(_tiny())  # remat off: nothing to do
    assert os.environ["XLA_FLAGS"] == ""
    assert not train.keep_remat_barriers(_tiny(remat="blocks"))  # JAX runs already: too late
    assert os.environ["XLA_FLAGS"] == ""
    monkeypatch.setenv("XLA_FLAGS", train.KEEP_REMAT_BARRIERS_FLAG)
    assert train.keep_remat_barriers(_tiny(remat="blocks"))


# ------------------------------------------------------------------------- critic updates


def test_unrolled_critic_updates_equal_the_loop(batch, monkeypatch):
    """On CPU, with XLA's convolutions, the step unrolls its critic updates (inside a loop
    XLA:CPU would run their input-gradient convolutions as plain loops): the same numbers as
    the loop, and the loop is really gone from the program (the test can fail)."""
    overrides = {"n_critic": 2, "model.conv_impl": "xla"}  # test_bfloat16_step_tracks_float32's
    assert train.unrolls_critic_updates("xla") and not train.unrolls_critic_updates("cpu_fast")
    _, unrolled, unrolled_metrics = one_step(batch, **overrides)
    config = _tiny(**overrides)
    networks = train.create_networks(config)

    def loops(state):  # the step's while loops (JAX's random bits bring their own)
        text = train.make_train_step(config, networks).lower(state, batch, None).as_text()
        return text.count("stablehlo.while")

    unrolled_loops = loops(train.create_train_state(config, networks))
    monkeypatch.setattr(train, "unrolls_critic_updates", lambda conv_impl: False)
    state = train.create_train_state(config, networks)
    assert loops(state) == unrolled_loops + 1
    looped, looped_metrics = train.make_train_step(config, networks)(state, batch, None)
    for a, b in zip(
        _leaves((unrolled.g_params, unrolled.d_params)), _leaves((looped.g_params, looped.d_params))
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    for k, v in looped_metrics.items():
        np.testing.assert_allclose(unrolled_metrics[k], float(v), rtol=1e-5, atol=1e-6, err_msg=k)


# ------------------------------------------------------------------------------------ EMA


def test_ema_follows_its_recurrence_and_leaves_training_alone(batch):
    decay = 0.75
    config = _tiny(ema_decay=decay, **{"model.conv_impl": "xla"})
    networks = train.create_networks(config)
    state = train.create_train_state(config, networks)
    assert isinstance(state, train.EMATrainState)
    assert not hasattr(train.create_train_state(_tiny(), networks), "ema_params")
    step = train.make_train_step(config, networks)
    want = _leaves(state.g_params)
    for _ in range(2):
        state, _ = step(state, batch, None)
        want = [decay * e + (1 - decay) * p for e, p in zip(want, _leaves(state.g_params))]
    for got, w in zip(_leaves(state.ema_params), want):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7)
    assert not all(
        np.array_equal(a, b) for a, b in zip(_leaves(state.ema_params), _leaves(state.g_params))
    )
    # The raw weights are those of a run without EMA (first step of the same config).
    _, plain, _ = one_step(batch, **{"model.conv_impl": "xla"})
    first = train.create_train_state(config, networks)
    first, _ = step(first, batch, None)
    for a, b in zip(_leaves(first.g_params), _leaves(plain.g_params)):
        np.testing.assert_array_equal(a, b)
    assert train.eval_params(first) is first.ema_params
    assert train.eval_params(plain) is plain.g_params


def test_ema_resume_is_exact_and_export_picks_the_weights(tmp_path):
    """6 straight steps == 4 steps, the run killed (its step-6 checkpoint gone), 2 more; the
    EMA weights included. Then export --weights ema|raw|auto end to end."""
    config = _tiny(ema_decay=0.8, **{"model.conv_impl": "xla"})
    workdir = str(tmp_path / "run")
    straight = train.train_and_evaluate(config, workdir, progress=False)
    ckpts = os.path.join(workdir, checkpoints.CHECKPOINT_DIR)
    assert sorted(n for n in os.listdir(ckpts) if n.isdigit()) == ["4", "6"]
    shutil.rmtree(os.path.join(ckpts, "6"))
    resumed = train.train_and_evaluate(config, workdir, progress=False)
    assert int(resumed.step) == 6
    for field in ("g_params", "d_params", "ema_params", "g_opt_state", "d_opt_state"):
        for a, b in zip(_leaves(getattr(resumed, field)), _leaves(getattr(straight, field))):
            np.testing.assert_array_equal(a, b, err_msg=field)

    def exported(weights):
        out = str(tmp_path / f"g_{weights}.msgpack")
        assert export.main(["--workdir", workdir, "--weights", weights, "--out", out]) == 0
        return _leaves(checkpoints.load_generator(out)[0])

    for weights, field in (("ema", "ema_params"), ("auto", "ema_params"), ("raw", "g_params")):
        for a, b in zip(exported(weights), _leaves(getattr(straight, field))):
            np.testing.assert_array_equal(a, b, err_msg=weights)
    # A run without EMA has none to export: the same run, as if started with ema_decay 0.
    plain = str(tmp_path / "plain")
    shutil.copytree(workdir, plain)
    stored = checkpoints.read_run_config(plain)
    stored.ema_decay = 0.0
    with open(os.path.join(plain, checkpoints.CONFIG_FILE), "w") as f:
        f.write(stored.to_json())
    assert (
        export.main(
            ["--workdir", plain, "--weights", "ema", "--out", str(tmp_path / "none.msgpack")]
        )
        != 0
    )
    assert not os.path.exists(tmp_path / "none.msgpack")


# ----------------------------------------------------------------------------- bfloat16


def test_bfloat16_step_tracks_float32(batch):
    """Measured on this config: total losses within 8e-5 relative, critic scores within 3.2e-4
    absolute, gradient norms within 0.8%, and Adam's first updates (lr * sign-like, so small
    gradients flip) at cosine 0.90 (generator) / 0.96 (critic) with 95% / 97% equal signs
    (with the tiny config's two critic updates)."""
    before32, after32, m32 = one_step(batch, n_critic=2, **{"model.conv_impl": "xla"})
    before16, after16, m16 = one_step(
        batch, n_critic=2, compute_dtype="bfloat16", **{"model.conv_impl": "xla"}
    )
    for leaf in jax.tree_util.tree_leaves(after16):  # params, Adam moments, EMA: float32
        assert leaf.dtype in (jnp.float32, jnp.int32, jnp.uint32), leaf.dtype
    for k in ("d_loss", "g_loss", "g_content", "gradient_penalty", "train_psnr"):
        np.testing.assert_allclose(m16[k], m32[k], rtol=1e-3, err_msg=k)
    for k in ("d_real", "d_fake", "wasserstein", "g_adversarial"):
        np.testing.assert_allclose(m16[k], m32[k], atol=2e-3, err_msg=k)
    for k in ("d_grad_norm", "g_grad_norm"):
        np.testing.assert_allclose(m16[k], m32[k], rtol=3e-2, err_msg=k)
    for i, (min_cos, min_signs) in enumerate(((0.85, 0.9), (0.9, 0.93))):
        np.testing.assert_array_equal(
            np.concatenate([x.ravel() for x in _leaves(before16[i])]),
            np.concatenate([x.ravel() for x in _leaves(before32[i])]),
        )
        u32 = np.concatenate(
            [
                (b - a).ravel()
                for a, b in zip(
                    _leaves(before32[i]), _leaves((after32.g_params, after32.d_params)[i])
                )
            ]
        )
        u16 = np.concatenate(
            [
                (b - a).ravel()
                for a, b in zip(
                    _leaves(before16[i]), _leaves((after16.g_params, after16.d_params)[i])
                )
            ]
        )
        cos = float(u16 @ u32 / np.linalg.norm(u16) / np.linalg.norm(u32))
        assert cos > min_cos, (i, cos)
        assert np.mean(np.sign(u16) == np.sign(u32)) > min_signs


def test_bfloat16_training_still_learns():
    """The fixed-batch learning check of test_train in bfloat16 (float32 params and Adam)."""
    config = _tiny(
        compute_dtype="bfloat16",
        n_critic=1,
        learning_rate=1e-3,
        num_steps=150,
        **{"model.conv_impl": "auto"},
    )
    batches = pipeline.create_train_dataset(
        config.data, batch_size=config.batch_size, crop_size=config.crop_size, seed=0
    )
    fixed = {k: jnp.asarray(v) for k, v in next(iter(batches)).items()}
    batches.close()
    networks = train.create_networks(config)
    assert networks.generator.conv_impl == "xla"  # 'auto' in bfloat16
    state = train.create_train_state(config, networks)
    # Run 150 times: compiled at level 1 (the suite's is 0, see compile_levels.py).
    step = compile_to_run_many(train.make_train_step(config, networks), state, fixed, None)
    restore = inference.make_restore_fn(networks.generator)
    sharp8 = metrics.to_uint8_range(fixed["sharp"])

    def restored_psnr(params):
        out = metrics.to_uint8_range(restore(params, fixed["blurred"]))
        return float(jnp.mean(metrics.psnr(out, sharp8)))

    psnr_before = restored_psnr(state.g_params)
    for _ in range(config.num_steps):
        state, step_metrics = step(state, fixed, None)
    psnr_after = restored_psnr(state.g_params)
    assert np.isfinite(float(step_metrics["g_loss"]))
    assert psnr_after > psnr_before + 3.0, (psnr_before, psnr_after)


# ---------------------------------------------------------------------------- gpu_check


def _positive_numbers(tree):
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k != "alias" for v in _positive_numbers(v)]
    if isinstance(tree, list):
        return [v for x in tree for v in _positive_numbers(x)]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return [tree]
    return []


def test_gpu_check_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "gpu_check", os.path.join(ROOT, "experiments", "gpu_check.py")
    )
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "check.json"
    result = gpu_check.main(["--smoke", "--out", str(out)])
    assert (
        json.loads(out.read_text())
        == json.loads(capsys.readouterr().out)
        == json.loads(json.dumps(result))
    )
    assert result["backend"] == "cpu" and result["smoke"]
    inference_rows = result["generator_inference"]
    for dtype in ("float32", "bfloat16"):
        row = inference_rows[dtype]["batch_1"]
        assert row["fits"] and row["frames_per_s"] > 0 and row["compile_s"] > 0
        assert inference_rows[dtype]["largest"]["batch"] >= 1
        assert row["peak_rss_bytes"] > 0  # CPU keeps no device statistics: RSS instead
    (setting,) = result["training"]["settings"]
    assert setting["fits"] and setting["iterations_per_s"] > 0 and setting["compile_s"] > 0
    assert setting["compiled_memory"]["temp"] > 0
    assert all(v >= 0 for v in _positive_numbers(result))
    assert result["elapsed_s"] > 0 and result["skipped"] == []
    # A spent budget skips, and says so.
    skipped = gpu_check.main(["--smoke", "--budget-s", "0"])
    assert skipped["training"]["settings"][0]["skipped"] == "time budget"
    assert skipped["skipped"]

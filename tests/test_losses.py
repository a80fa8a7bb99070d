"""Losses: the gradient penalty against closed forms and PyTorch autograd (values and the double
backward into the critic's parameters), the original code's deviating penalty, the LSGAN/GAN
alternatives, the perceptual loss against PyTorch, and the dispatchers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from deblurgan_jax import losses
from deblurgan_jax.networks import models
from deblurgan_jax.weights import torch_weights
import torch_reference as ref

torch.manual_seed(0)

N, H, W, C = 3, 32, 32, 3


def _sd(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def _images(seed, shape=(N, H, W, C)):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, shape).astype(np.float32)


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)


# --------------------------------------------------------------------------------------------
# Shapes and reductions.


def test_critic_scores_reductions():
    patches = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4, 1)
    np.testing.assert_allclose(losses.critic_scores(patches), [5.5, 17.5])
    np.testing.assert_allclose(losses.critic_scores(patches, "sum"), [66.0, 210.0])
    per_sample = jnp.array([1.0, -2.0], jnp.bfloat16)
    for reduction in ("mean", "sum"):  # (N,) scores pass through, as float32
        out = losses.critic_scores(per_sample, reduction)
        assert out.dtype == jnp.float32
        np.testing.assert_array_equal(out, [1.0, -2.0])
    with pytest.raises(ValueError, match="mean.*sum"):
        losses.critic_scores(patches, "max")


def test_interpolate_is_per_sample():
    real, fake = jnp.ones((3, 2, 2, 1)), -jnp.ones((3, 2, 2, 1))
    x_hat = losses.interpolate(real, fake, jnp.array([0.0, 1.0, 0.25]))
    np.testing.assert_allclose(x_hat[:, 0, 0, 0], [-1.0, 1.0, -0.5])
    assert np.all(x_hat == x_hat[:, :1, :1, :])  # one alpha over each whole sample
    with pytest.raises(ValueError, match="one value per sample"):
        losses.interpolate(real, fake, jnp.array(0.5))


# --------------------------------------------------------------------------------------------
# The gradient penalty against closed forms.


def _linear_critic(w, b):
    """f(x_n) = <w, x_n> + b: its input gradient is w everywhere."""
    return lambda x: jnp.einsum("nhwc,hwc->n", x, w) + b


@pytest.mark.parametrize("w_norm", [3.0, 0.4])
def test_gradient_penalty_of_a_linear_critic(w_norm):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 8, 3)).astype(np.float32)
    w *= w_norm / np.linalg.norm(w)
    critic = _linear_critic(jnp.asarray(w), 0.7)
    real, fake = _images(1, (4, 8, 8, 3)), _images(2, (4, 8, 8, 3))
    for alpha in ([0.0, 0.3, 0.6, 1.0], rng.uniform(size=4).astype(np.float32)):
        gp = losses.gradient_penalty(critic, real, fake, jnp.asarray(alpha, jnp.float32))
        np.testing.assert_allclose(gp, (w_norm - 1.0) ** 2, rtol=1e-5)


def test_gradient_penalty_uses_one_alpha_per_sample():
    # f(x_n) = 0.5 ||x_n||^2 has gradient x_n, so at the interpolate the norm is
    # ||alpha_n real_n + (1 - alpha_n) fake_n||; with fake = 0 and ||real_n|| = 2 it is 2 alpha_n.
    critic = lambda x: 0.5 * jnp.sum(jnp.square(x), axis=(1, 2, 3))  # noqa: E731
    real = np.full((3, 4, 4, 1), 0.5, np.float32)  # ||real_n|| = sqrt(16 * 0.25) = 2
    fake = np.zeros_like(real)
    alpha = jnp.array([0.1, 0.5, 0.9])
    norms = losses.input_gradient_norms(critic, losses.interpolate(real, fake, alpha))
    np.testing.assert_allclose(norms, [0.2, 1.0, 1.8], rtol=1e-6)
    gp = losses.gradient_penalty(critic, real, fake, alpha)
    np.testing.assert_allclose(gp, ((0.2 - 1) ** 2 + 0.0 + (1.8 - 1) ** 2) / 3, rtol=1e-6)
    # One alpha for the batch (their mean) would give a different value: the per-sample alphas
    # are what is used.
    gp_shared = losses.gradient_penalty(critic, real, fake, jnp.full((3,), 0.5))
    np.testing.assert_allclose(gp_shared, 0.0, atol=1e-6)


def test_gradient_penalty_is_differentiable_where_the_input_gradient_vanishes():
    # At c = 0 the critic c * sum(x) has a zero input gradient: the penalty is 1 and its
    # derivative in c is finite (0), thanks to the epsilon inside the square root.
    x = _images(3, (2, 4, 4, 3))

    def penalty(c):
        return losses.gradient_penalty(
            lambda v: c * jnp.sum(v, axis=(1, 2, 3)), x, -x, jnp.array([0.2, 0.7])
        )

    value, grad = jax.value_and_grad(penalty)(0.0)
    np.testing.assert_allclose(value, 1.0, atol=1e-5)
    assert np.isfinite(grad)


# --------------------------------------------------------------------------------------------
# The gradient penalty against PyTorch autograd on the PatchGAN critic.


@functools.lru_cache(maxsize=None)
def _small_critic():
    tnet = ref.randomize_biases(ref.NLayerDiscriminator(ndf=8), scale=0.5, seed=4).eval()
    params, cfg = torch_weights.critic_params_from_state_dict(_sd(tnet))
    return tnet, params, models.PatchCritic(**cfg)


def _torch_textbook_penalty(tnet, real, fake, alpha, reduction):
    """WGAN-GP as in Gulrajani et al.: per-sample alpha, norm over each whole sample."""
    a = torch.from_numpy(alpha).view(-1, 1, 1, 1)
    x_hat = (a * real + (1 - a) * fake).detach().requires_grad_(True)
    out = tnet(x_hat)
    scale = 1.0 if reduction == "sum" else 1.0 / out[0].numel()  # d(per-sample mean)/d(patch)
    (grads,) = torch.autograd.grad(
        out, x_hat, grad_outputs=torch.full_like(out, scale), create_graph=True
    )
    norms = grads.flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean()


def _torch_original_penalty(tnet, real, fake, alpha_scalar):
    """The original code: one alpha for the batch, `gradients.norm(2, dim=1)` (per pixel)."""
    x_hat = (alpha_scalar * real + (1 - alpha_scalar) * fake).detach().requires_grad_(True)
    out = tnet(x_hat)
    (grads,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


def _critic_case():
    real, fake = _images(10), _images(11)
    alpha = np.array([0.15, 0.5, 0.85], np.float32)
    return real, fake, alpha


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_penalty_and_critic_loss_match_pytorch(reduction):
    tnet, params, critic = _small_critic()
    real, fake, alpha = _critic_case()
    treal, tfake = ref.nchw(real), ref.nchw(fake)
    critic_fn = lambda x: critic.apply({"params": params}, x)  # noqa: E731  patch map

    want_gp = _torch_textbook_penalty(tnet, treal, tfake, alpha, reduction).item()
    got_gp = losses.gradient_penalty(critic_fn, real, fake, alpha, reduction)
    np.testing.assert_allclose(got_gp, want_gp, rtol=1e-5)

    # The same penalty through a critic_fn that reduces to (N,) scores itself.
    per_sample = lambda x: losses.critic_scores(critic_fn(x), reduction)  # noqa: E731
    np.testing.assert_allclose(
        losses.gradient_penalty(per_sample, real, fake, alpha), want_gp, rtol=1e-5
    )

    d_real, d_fake = tnet(treal).mean().item(), tnet(tfake).mean().item()
    want_loss = d_fake - d_real + 10.0 * want_gp
    loss, aux = losses.wgan_gp_critic_loss(critic_fn, real, fake, alpha, reduction=reduction)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(aux["gradient_penalty"], want_gp, rtol=1e-5)
    np.testing.assert_allclose(aux["d_real"], d_real, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(aux["d_fake"], d_fake, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(aux["wasserstein"], d_real - d_fake, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_critic_loss_gradient_matches_pytorch_double_backward(reduction):
    tnet, params, critic = _small_critic()
    real, fake, alpha = _critic_case()
    treal, tfake = ref.nchw(real), ref.nchw(fake)

    tnet.zero_grad()
    gp = _torch_textbook_penalty(tnet, treal, tfake, alpha, reduction)
    (tnet(tfake).mean() - tnet(treal).mean() + 10.0 * gp).backward()
    torch_grads = {k: p.grad.numpy() for k, p in tnet.named_parameters()}

    def loss_fn(p):
        return losses.wgan_gp_critic_loss(
            lambda x: critic.apply({"params": p}, x), real, fake, alpha, reduction=reduction
        )[0]

    grads = jax.jit(jax.grad(loss_fn))(params)
    conv_idx = sorted({int(k.split(".")[1]) for k in torch_grads})
    checked = 0
    for j, i in enumerate(conv_idx):
        want = np.transpose(torch_grads[f"model.{i}.weight"], (2, 3, 1, 0))
        got = np.asarray(grads[f"conv_{j}"]["kernel"])
        assert np.abs(want).max() > 0
        assert _rel(got, want) < 1e-4, (f"conv_{j}", _rel(got, want))
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
        checked += 1
        if "bias" in grads[f"conv_{j}"]:
            # The last conv's bias gets an exactly zero gradient (it cancels in
            # mean D(fake) - mean D(real) and the penalty does not see it): compare absolutely.
            want_b, got_b = torch_grads[f"model.{i}.bias"], np.asarray(grads[f"conv_{j}"]["bias"])
            np.testing.assert_allclose(got_b, want_b, rtol=1e-4, atol=1e-7)
            checked += 1
        else:
            # A bias before InstanceNorm is dead weight: PyTorch's gradient for it is ~0.
            assert np.abs(torch_grads[f"model.{i}.bias"]).max() < 1e-4 * np.abs(want).max()
    assert checked == len(jax.tree_util.tree_leaves(params))


def test_original_penalty_differs_from_the_textbook_one():
    # Linear critic (NumPy closed form): the textbook norm is ||w|| over the whole sample; the
    # original's per-pixel channel norm sees ||w[h, w, :]||, much smaller on a 16x16 image.
    rng = np.random.default_rng(5)
    w = rng.normal(size=(16, 16, 3))
    w *= 3.0 / np.linalg.norm(w)
    textbook = (np.linalg.norm(w) - 1.0) ** 2
    original = np.mean((np.linalg.norm(w, axis=-1) - 1.0) ** 2)
    got = losses.gradient_penalty(
        _linear_critic(jnp.asarray(w, jnp.float32), 0.0),
        _images(6, (2, 16, 16, 3)),
        _images(7, (2, 16, 16, 3)),
        jnp.array([0.3, 0.8]),
    )
    np.testing.assert_allclose(got, textbook, rtol=1e-5)
    assert abs(original - textbook) > 0.5

    # The PatchGAN critic with PyTorch autograd, the same alpha for every sample (so only the
    # norm differs): the original's 'sum' gradient, channel norm per pixel, is not WGAN-GP's.
    tnet, params, critic = _small_critic()
    real, fake, _ = _critic_case()
    treal, tfake = ref.nchw(real), ref.nchw(fake)
    original_t = _torch_original_penalty(tnet, treal, tfake, 0.5).item()
    textbook_t = _torch_textbook_penalty(
        tnet, treal, tfake, np.full(N, 0.5, np.float32), "sum"
    ).item()
    got = losses.gradient_penalty(
        lambda x: critic.apply({"params": params}, x), real, fake, jnp.full((N,), 0.5), "sum"
    )
    np.testing.assert_allclose(got, textbook_t, rtol=1e-5)
    assert abs(original_t - textbook_t) > 1e-2 * max(abs(textbook_t), 1.0), (original_t, textbook_t)


# --------------------------------------------------------------------------------------------
# WGAN generator, LSGAN and vanilla GAN.

REAL = jnp.array([1.0, 0.0, 2.0])
FAKE = jnp.array([0.0, 1.0, -1.0])


def test_wgan_generator_loss():
    np.testing.assert_allclose(losses.wgan_generator_loss(FAKE), 0.0)
    np.testing.assert_allclose(losses.generator_adversarial_loss("wgan-gp", REAL), -1.0)


def test_lsgan_closed_form():
    loss, aux = losses.lsgan_critic_loss(REAL, FAKE)
    np.testing.assert_allclose(loss, 0.5 * ((0 + 1 + 1) / 3 + (0 + 1 + 1) / 3), rtol=1e-6)
    np.testing.assert_allclose(aux["d_real"], 1.0)
    np.testing.assert_allclose(losses.lsgan_generator_loss(FAKE), (1 + 0 + 4) / 3, rtol=1e-6)
    # Patch maps: the criterion applies to every patch score.
    patches = jnp.array([0.0, 2.0]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(losses.lsgan_generator_loss(patches), 1.0)


def test_vanilla_gan_closed_form():
    real = jnp.array([0.0, np.log(3.0)])  # sigmoid: 0.5, 0.75
    fake = jnp.array([0.0, -np.log(3.0)])  # sigmoid: 0.5, 0.25
    loss, _ = losses.gan_critic_loss(real, fake)
    want = 0.5 * (-(np.log(0.5) + np.log(0.75)) / 2 - (np.log(0.5) + np.log(0.75)) / 2)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(
        losses.gan_generator_loss(fake), -(np.log(0.5) + np.log(0.25)) / 2, rtol=1e-6
    )


def test_vanilla_gan_is_stable_for_large_logits():
    big = jnp.array([100.0, -100.0])
    for real, fake, want in [
        (big, -big, 50.0),
        (jnp.full(2, 100.0), jnp.full(2, -100.0), 0.0),
        (jnp.full(2, -100.0), jnp.full(2, 100.0), 100.0),
    ]:
        (loss, _), (g_real, g_fake) = jax.value_and_grad(
            losses.gan_critic_loss, argnums=(0, 1), has_aux=True
        )(real, fake)
        np.testing.assert_allclose(loss, want, atol=1e-4)
        assert np.all(np.isfinite(g_real)) and np.all(np.isfinite(g_fake))
    value, grad = jax.value_and_grad(losses.gan_generator_loss)(jnp.full(2, -100.0))
    np.testing.assert_allclose(value, 100.0, rtol=1e-6)
    assert np.all(np.isfinite(grad))


def test_dispatchers_match_the_direct_functions():
    _, params, critic = _small_critic()
    real, fake, alpha = _critic_case()
    critic_fn = lambda x: critic.apply({"params": params}, x)  # noqa: E731
    got, _ = losses.critic_loss(
        "wgan-gp", critic_fn, real, fake, alpha, gp_weight=3.0, reduction="sum"
    )
    want, _ = losses.wgan_gp_critic_loss(critic_fn, real, fake, alpha, 3.0, "sum")
    np.testing.assert_allclose(got, want, rtol=1e-6)
    r, f = critic_fn(real), critic_fn(fake)
    for kind, direct in [("lsgan", losses.lsgan_critic_loss), ("gan", losses.gan_critic_loss)]:
        np.testing.assert_allclose(
            losses.critic_loss(kind, critic_fn, real, fake)[0], direct(r, f)[0], rtol=1e-6
        )
    np.testing.assert_allclose(
        losses.generator_adversarial_loss("lsgan", f), losses.lsgan_generator_loss(f), rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.generator_adversarial_loss("gan", f), losses.gan_generator_loss(f), rtol=1e-6
    )


# --------------------------------------------------------------------------------------------
# Content losses.


@functools.lru_cache(maxsize=None)
def _small_vgg():
    tnet = ref.randomize_biases(ref.VGGTrunk(after_relu=False), scale=0.1, seed=8).eval()
    params = torch_weights.vgg_params_from_torchvision(_sd(tnet))
    net = models.VGGFeatures(after_relu=False, imagenet_normalize=False)
    return tnet, (lambda x: net.apply({"params": params}, x))


def test_perceptual_loss_matches_pytorch():
    tnet, features_fn = _small_vgg()
    restored, sharp = _images(20, (2, H, W, C)), _images(21, (2, H, W, C))
    t_restored = ref.nchw(restored).requires_grad_(True)
    want = torch.nn.functional.mse_loss(tnet(t_restored), tnet(ref.nchw(sharp)).detach())
    want.backward()
    got, grad = jax.value_and_grad(losses.perceptual_loss, argnums=1)(features_fn, restored, sharp)
    np.testing.assert_allclose(got, want.item(), rtol=1e-5)
    assert _rel(grad, ref.nhwc(t_restored.grad)) < 1e-4
    np.testing.assert_allclose(
        losses.content_loss("perceptual", restored, sharp, features_fn=features_fn), got, rtol=1e-6
    )


def test_perceptual_loss_gradients():
    _, features_fn = _small_vgg()
    restored, sharp = _images(22, (2, H, W, C)), _images(23, (2, H, W, C))
    np.testing.assert_allclose(losses.perceptual_loss(features_fn, sharp, sharp), 0.0)
    g_restored, g_sharp = jax.grad(losses.perceptual_loss, argnums=(1, 2))(
        features_fn, jnp.asarray(restored), jnp.asarray(sharp)
    )
    assert np.all(np.isfinite(g_restored)) and np.abs(g_restored).max() > 0
    np.testing.assert_array_equal(g_sharp, 0.0)  # the target's features are stop_gradient-ed


def test_l1_loss():
    a, b = jnp.zeros((1, 2, 2, 1)), jnp.array([1.0, -2.0, 0.5, 0.5]).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(losses.l1_loss(a, b), 1.0)
    np.testing.assert_allclose(losses.content_loss("l1", a, b), 1.0)


# --------------------------------------------------------------------------------------------
# Dispatch errors, jit / vmap / bfloat16.


def test_dispatchers_reject_unknown_kinds():
    critic_fn = lambda x: jnp.sum(x, axis=(1, 2, 3))  # noqa: E731
    x = jnp.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match="'wgan'.*wgan-gp, lsgan, gan"):
        losses.critic_loss("wgan", critic_fn, x, x, jnp.zeros(2))
    with pytest.raises(ValueError, match="wgan-gp, lsgan, gan"):
        losses.generator_adversarial_loss("hinge", x)
    with pytest.raises(ValueError, match="perceptual, l1"):
        losses.content_loss("mse", x, x)
    with pytest.raises(ValueError, match="features_fn"):
        losses.content_loss("perceptual", x, x)
    with pytest.raises(ValueError, match="alpha"):
        losses.critic_loss("wgan-gp", critic_fn, x, x)


def test_jit_vmap_and_bfloat16():
    _, params, critic = _small_critic()
    real, fake, alpha = _critic_case()

    def loss_fn(r, f, a):
        return losses.critic_loss(
            "wgan-gp", lambda x: critic.apply({"params": params}, x), r, f, a
        )[0]

    jitted = jax.jit(loss_fn)
    eager = loss_fn(real, fake, alpha)
    np.testing.assert_allclose(jitted(real, fake, alpha), eager, rtol=1e-5)

    # vmap over a leading axis of batches (e.g. one per critic step) = a loop over them.
    stacks = np.stack([real, fake]), np.stack([fake, real]), np.stack([alpha, alpha[::-1]])
    batched = jax.jit(jax.vmap(loss_fn))(*stacks)
    looped = [jitted(r, f, a) for r, f, a in zip(*stacks)]
    np.testing.assert_allclose(batched, looped, rtol=1e-5)

    # bfloat16 images: the loss is computed (and returned) in float32, close to the f32 value.
    got = loss_fn(jnp.asarray(real, jnp.bfloat16), jnp.asarray(fake, jnp.bfloat16), alpha)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, eager, rtol=2e-2)
    bf16_critic = models.PatchCritic(ndf=8, dtype=jnp.bfloat16)
    loss, aux = losses.wgan_gp_critic_loss(
        lambda x: bf16_critic.apply({"params": params}, x),
        jnp.asarray(real, jnp.bfloat16),
        jnp.asarray(fake, jnp.bfloat16),
        alpha,
    )
    assert loss.dtype == jnp.float32 and np.isfinite(loss)
    assert all(v.dtype == jnp.float32 for v in aux.values())
    g = losses.generator_adversarial_loss("gan", jnp.full((2, 3, 3, 1), 3.0, jnp.bfloat16))
    assert g.dtype == jnp.float32
    c = losses.content_loss("l1", jnp.ones((1, 2, 2, 3), jnp.bfloat16), jnp.zeros((1, 2, 2, 3)))
    assert c.dtype == jnp.float32 and float(c) == 1.0

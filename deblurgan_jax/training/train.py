"""DeblurGAN training: WGAN-GP critic + perceptual loss, one compiled step, Orbax checkpoints.

`train_step(state, batch, vgg_params)` runs `n_critic` critic updates and one generator update
inside one jitted function (no Python loop around jitted calls), with the state buffers donated.
Written once with an optional axis name, the same step runs data-parallel over devices and hosts
(`parallel.py`: 'pmap' or 'sharding' drivers). `train_and_evaluate(config, workdir)` is the
loop: data, checkpoints (resumed from the latest), TensorBoard, progress bar, periodic
evaluation. The root `train.py` is its command line.

Memory and weights: `config.remat` checkpoints the generator's ResBlocks and the critic's layers
('blocks') or whole networks ('full'), chosen once in `create_networks` (on XLA:CPU it needs
`KEEP_REMAT_BARRIERS_FLAG`, which `train_and_evaluate` sets when it can). `config.ema_decay > 0`
makes the state an `EMATrainState`, which also holds the exponential moving average of the
generator's weights (a deviation from the paper, off by default): updated in the step,
checkpointed, evaluated during training and picked by evaluate/export/deblur (`--weights`).
`config.compute_dtype='bfloat16'` computes the networks in bfloat16; params, Adam moments, the
EMA, losses and the gradient penalty's norms stay float32 (tests/test_scale.py).

Randomness: one root key from `config.seed`; the key of step s is fold_in(root, s) (and, on several
devices, the device index, under either driver), split into dropout and penalty keys, so a resumed
run draws exactly the numbers a straight run would, and the data pipeline is a pure function of
(seed, example index).
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from deblurgan_jax.weights import checkpoints
from deblurgan_jax.networks import conv_ops, inference, models
from deblurgan_jax import losses
from deblurgan_jax import config as config_lib
from deblurgan_jax.evaluation import metrics as image_metrics
from deblurgan_jax.evaluation import scoring

# --------------------------------------------------------------------------------------------
# State and models.


@flax.struct.dataclass
class TrainState:
    step: jnp.ndarray
    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    rng: jnp.ndarray  # raw key data (uint32) of the root key


@flax.struct.dataclass
class EMATrainState(TrainState):
    """The state of a run with `config.ema_decay > 0`: also the exponential moving average of
    the generator's weights (float32), updated after every generator update. A run without EMA
    has a plain `TrainState`, so its checkpoints hold no 'ema_params' at all (and resuming with
    EMA switched on or off is refused by `config.resume_changes`)."""

    ema_params: Any


def eval_params(state: TrainState) -> Any:
    """The generator weights a run evaluates and exports: the EMA when the run keeps one."""
    return state.ema_params if isinstance(state, EMATrainState) else state.g_params


def update_ema(ema_params: Any, params: Any, decay: float) -> Any:
    """ema = decay * ema + (1 - decay) * params, in float32."""
    decay32 = jnp.float32(decay)
    return jax.tree_util.tree_map(
        lambda e, p: decay32 * e.astype(jnp.float32) + (1 - decay32) * p.astype(jnp.float32),
        ema_params,
        params,
    )


@flax.struct.dataclass
class Networks:
    """The modules of a run (static: hashable config, no arrays)."""

    generator: models.ResnetGenerator = flax.struct.field(pytree_node=False)
    critic: models.PatchCritic = flax.struct.field(pytree_node=False)
    features: models.VGGFeatures | None = flax.struct.field(pytree_node=False)


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
    """The jax.numpy dtype named by config.compute_dtype (one of config_lib.COMPUTE_DTYPES)."""
    return getattr(jnp, config.compute_dtype)


# XLA:CPU removes the optimization barriers `jax.checkpoint` puts around a recomputation (its
# 'cse_barrier_expander' pass) before common-subexpression elimination, which then merges the
# recomputation with the forward pass: remat compiles to the very program it was meant to
# shrink (the same temporaries; README, "Performance and memory"). Keeping the barriers
# makes it effective; the flag must be in XLA_FLAGS before JAX starts its backend.
KEEP_REMAT_BARRIERS_FLAG = "--xla_disable_hlo_passes=cse_barrier_expander"


def keep_remat_barriers(config: ml_collections.ConfigDict) -> bool:
    """With `config.remat` on, adds KEEP_REMAT_BARRIERS_FLAG to XLA_FLAGS if JAX's backend has
    not started yet (a warning otherwise, where it is missing). Returns whether it is in force.
    Only the CPU backend is concerned: accelerators' pipelines honour the barriers, and the
    flag names a pass, so elsewhere it changes nothing."""
    flags = os.environ.get("XLA_FLAGS", "")
    if config.get("remat", "none") == "none" or "cse_barrier_expander" in flags:
        return "cse_barrier_expander" in flags
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        started = True
    if started:
        logging.warning(
            "config.remat=%r: JAX started before %s was in XLA_FLAGS; on CPU the "
            "recomputation is merged away and memory does not fall. Set it in "
            "XLA_FLAGS before starting Python.",
            config.remat,
            KEEP_REMAT_BARRIERS_FLAG,
        )
        return False
    os.environ["XLA_FLAGS"] = with_disabled_pass(flags, "cse_barrier_expander")
    return True


def with_disabled_pass(flags: str, name: str) -> str:
    """XLA_FLAGS with pass `name` added to --xla_disable_hlo_passes (merged into an existing
    list: a second occurrence of the flag would replace the user's own)."""
    parts = flags.split()
    for i, part in enumerate(parts):
        if part.startswith("--xla_disable_hlo_passes="):
            passes = [p for p in part.split("=", 1)[1].split(",") if p]
            if name not in passes:
                parts[i] = "--xla_disable_hlo_passes=" + ",".join(passes + [name])
            return " ".join(parts)
    return " ".join(parts + [f"--xla_disable_hlo_passes={name}"])


def release_freed_host_memory() -> None:
    """Returns the heap memory that XLA's compiler freed to the operating system (glibc's
    `malloc_trim`; nothing elsewhere). glibc keeps freed blocks for reuse, so after compiling
    the train step a CPU process would hold that garbage through training: trimming once lowers
    the peak RSS of every step (README, "Performance and memory").
    Accelerators keep their activations in device memory, where this changes nothing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def create_networks(
    config: ml_collections.ConfigDict, vgg_preprocess: str = "torch", backend: str | None = None
) -> Networks:
    """The run's networks, with `config.model.conv_impl` resolved once here ('auto': see
    `conv_ops.resolve_conv_impl`; `backend` defaults to JAX's default backend) and
    `config.remat` applied to the generator, the critic and the VGG trunk."""
    dtype = compute_dtype(config)
    m = config.model
    conv_impl = conv_ops.resolve_conv_impl(m.get("conv_impl", "auto"), dtype, backend)
    remat = models.check_remat(config.get("remat", "none"))
    generator = models.build_generator(
        m,
        conv_impl=conv_impl,
        dtype=dtype,
        remat=remat,
        zero_init_head=m.get("zero_init_head", False),
    )
    critic = models.PatchCritic(
        ndf=m.ndf, n_layers=m.n_layers, dtype=dtype, conv_impl=conv_impl, remat=remat
    )
    features = None
    if config.loss.content == "perceptual":
        features = models.VGGFeatures(
            arch=config.loss.vgg_arch,
            layer=config.loss.vgg_layer,
            after_relu=config.loss.vgg_after_relu,
            imagenet_normalize=config.loss.vgg_imagenet_normalize,
            preprocess=vgg_preprocess,
            dtype=dtype,
            conv_impl=conv_impl,
            remat=remat,
        )
    return Networks(generator, critic, features)


def load_feature_params(config: ml_collections.ConfigDict) -> tuple[Any, str]:
    """The frozen VGG weights of the perceptual loss (None for an L1 content loss)."""
    if config.loss.content != "perceptual":
        return None, "torch"
    params, preprocess = models.load_vgg_params(
        config.loss.vgg_arch, config.loss.vgg_weights or None
    )
    return jax.tree_util.tree_map(jnp.asarray, params), preprocess


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Constant, then linear decay to 0 at `num_steps` (paper: 150 + 150 epochs)."""
    decay_start = int(round(config.num_steps * config.decay_start_fraction))
    decay_steps = max(config.num_steps - decay_start, 1)
    return optax.join_schedules(
        [
            optax.constant_schedule(config.learning_rate),
            optax.linear_schedule(config.learning_rate, 0.0, decay_steps),
        ],
        [decay_start],
    )


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    # The learning rate is injected so the step can set it from the TRAINING step: the critic
    # makes n_critic updates per step, and both schedules follow training steps, not updates.
    return optax.inject_hyperparams(optax.adam)(
        learning_rate=config.learning_rate, b1=config.b1, b2=config.b2
    )


INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def _initial_fields(config: ml_collections.ConfigDict, networks: Networks) -> dict[str, Any]:
    root = jax.random.key(config.seed)
    k_g, k_d = jax.random.split(jax.random.fold_in(root, -1 & 0x7FFFFFFF))
    dummy = jnp.zeros((1, 32, 32, 3), jnp.float32)
    g_params = networks.generator.init(k_g, dummy)["params"]
    d_params = networks.critic.init(k_d, dummy)["params"]
    tx = make_optimizer(config)
    return dict(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=tx.init(g_params),
        d_opt_state=tx.init(d_params),
        rng=jax.random.key_data(root),
    )


def create_train_state(config: ml_collections.ConfigDict, networks: Networks) -> TrainState:
    # One program, compiled at XLA's optimisation level 1: op by op, each of the ~100
    # initialisers and optimizer zeros compiles on its own, and at the default level the
    # threefry draws of one program take several times longer to compile (it runs once).
    init = jax.jit(functools.partial(_initial_fields, config, networks))
    fields = init.lower().compile(compiler_options=INIT_COMPILER_OPTIONS)()
    g_params = fields["g_params"]
    if config.get("ema_decay", 0.0) > 0:
        # The average starts at the initial weights (a copy: the step donates both buffers).
        ema = jax.tree_util.tree_map(lambda p: jnp.array(p, jnp.float32, copy=True), g_params)
        return EMATrainState(**fields, ema_params=ema)
    return TrainState(**fields)


# --------------------------------------------------------------------------------------------
# The step.


def _set_lr(opt_state: Any, lr: jnp.ndarray) -> Any:
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, opt_state.hyperparams["learning_rate"].dtype)
    return opt_state._replace(hyperparams=hyper)


def step_keys(state: TrainState, axis_name: str | None) -> tuple[jax.Array, ...]:
    """(dropout, penalty) keys of this step (and device)."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if axis_name is not None:
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    return tuple(jax.random.split(key, 2))


def train_step(
    state: TrainState,
    batch: Mapping[str, jnp.ndarray],
    feature_params: Any,
    *,
    networks: Networks,
    config: ml_collections.ConfigDict,
    axis_name: str | None = None,
    alpha: jnp.ndarray | None = None,
) -> tuple[TrainState, dict[str, jnp.ndarray]]:
    """`n_critic` critic updates, then one generator update.

    Args:
      state: the full training state.
      batch: {'blurred', 'sharp'} float32 [-1, 1], (B, H, W, 3); with
        `config.critic_batches == 'fresh'` (n_critic, B, H, W, 3), one batch per critic update.
      feature_params: frozen VGG params of the perceptual loss (None for L1).
      axis_name: the data-parallel axis; gradients and metrics are averaged over it.
      alpha: optional fixed interpolation weights (n_critic, B) for the gradient penalty
        (tests); drawn from the step's key otherwise.
    """
    g, d, feats = networks.generator, networks.critic, networks.features
    schedule = learning_rate_schedule(config)
    lr = schedule(state.step)
    tx = make_optimizer(config)
    k_dropout, k_alpha = step_keys(state, axis_name)
    fresh = config.critic_batches == "fresh"
    blurred, sharp = batch["blurred"], batch["sharp"]
    n_critic = int(config.n_critic)
    per_step = blurred.shape[1] if fresh else blurred.shape[0]
    if alpha is None:
        alpha = jax.random.uniform(k_alpha, (n_critic, per_step))

    def generate(g_params, x, key):
        return g.apply({"params": g_params}, x, deterministic=False, rngs={"dropout": key})

    def patch_scores(d_params, images):
        return d.apply({"params": d_params}, images)

    def pmean(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    # The generator's forward pass for its own update; in 'shared' mode its output is also the
    # fake image of every critic update (as in the original code), so it is computed once.
    g_blurred = blurred[-1] if fresh else blurred
    g_sharp = sharp[-1] if fresh else sharp
    g_key = jax.random.fold_in(k_dropout, n_critic - 1) if fresh else k_dropout
    fake, g_vjp = jax.vjp(lambda p: generate(p, g_blurred, g_key), state.g_params)

    def critic_update(i, carry):
        d_params, d_opt_state, _ = carry
        if fresh:
            real_i = sharp[i]
            fake_i = generate(state.g_params, blurred[i], jax.random.fold_in(k_dropout, i))
        else:
            real_i, fake_i = sharp, fake
        fake_i = jax.lax.stop_gradient(fake_i)

        def loss_fn(p):
            return losses.critic_loss(
                config.loss.gan,
                lambda x: patch_scores(p, x),
                real_i,
                fake_i,
                alpha[i],
                gp_weight=config.loss.gp_weight,
                reduction=config.loss.critic_reduction,
            )

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
        grads = pmean(grads)
        updates, d_opt_state = tx.update(grads, d_opt_state, d_params)
        aux = dict(aux, d_loss=loss, d_grad_norm=optax.tree.norm(grads))
        return optax.apply_updates(d_params, updates), d_opt_state, aux

    d_opt_state = _set_lr(state.d_opt_state, lr)
    _, _, aux0 = jax.eval_shape(lambda: critic_update(0, (state.d_params, d_opt_state, None)))
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), aux0)
    d_params, d_opt_state, d_metrics = jax.lax.fori_loop(
        0,
        n_critic,
        critic_update,
        (state.d_params, d_opt_state, zeros),
        unroll=unrolls_critic_updates(d.conv_impl),
    )

    def g_loss_fn(restored):
        adv = losses.generator_adversarial_loss(config.loss.gan, patch_scores(d_params, restored))
        if config.loss.content == "perceptual":
            features = lambda x: feats.apply({"params": feature_params}, x)  # noqa: E731
            content = losses.content_loss("perceptual", restored, g_sharp, features_fn=features)
        else:
            content = losses.content_loss(config.loss.content, restored, g_sharp)
        total = config.loss.adversarial_weight * adv + config.loss.content_weight * content
        metrics = {"g_adversarial": adv, "g_content": content}
        if config.loss.get("pixel_l1_weight", 0.0):
            pixel = losses.l1_loss(restored, g_sharp)
            total = total + config.loss.pixel_l1_weight * pixel
            metrics["g_pixel_l1"] = pixel
        return total, dict(metrics, g_loss=total)

    (_, g_metrics), grad_fake = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
    (g_grads,) = g_vjp(grad_fake)
    g_grads = pmean(g_grads)
    g_updates, g_opt_state = tx.update(g_grads, _set_lr(state.g_opt_state, lr), state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    restored_psnr = image_metrics.psnr(
        image_metrics.to_uint8_range(fake), image_metrics.to_uint8_range(g_sharp)
    )
    metrics = {
        **d_metrics,
        **g_metrics,
        "lr": lr,
        "train_psnr": jnp.mean(restored_psnr),
        "g_grad_norm": optax.tree.norm(g_grads),
    }
    metrics = pmean(metrics)
    new_state = state.replace(  # type: ignore[attr-defined]  # flax.struct adds replace
        step=state.step + 1,
        g_params=g_params,
        d_params=d_params,
        g_opt_state=g_opt_state,
        d_opt_state=d_opt_state,
    )
    if isinstance(state, EMATrainState):
        new_state = new_state.replace(
            ema_params=update_ema(state.ema_params, g_params, config.ema_decay)
        )
    return new_state, metrics


def unrolls_critic_updates(conv_impl: str) -> bool:
    """Whether the step unrolls its `n_critic` critic updates instead of looping over them.

    Inside a loop, XLA:CPU leaves the input-gradient convolutions of XLA's own convolutions
    ('xla') in a kernel layout its Eigen convolutions do not take and runs them as plain loops;
    unrolled, it rewrites them for Eigen (README, "Measured design choices"). 'cpu_fast' forms
    those gradients itself (unrolling would only lengthen its compile), and other backends keep
    the loop, which compiles once for all the updates.
    """
    return conv_impl == "xla" and jax.default_backend() == "cpu"


def make_train_step(
    config: ml_collections.ConfigDict, networks: Networks
) -> Callable[..., tuple[TrainState, dict]]:
    """The jitted single-device step, state buffers donated."""
    step = functools.partial(train_step, networks=networks, config=config)
    return jax.jit(step, donate_argnums=(0,))


# --------------------------------------------------------------------------------------------
# Evaluation during training.


def evaluate_generator(
    generator: models.ResnetGenerator,
    g_params: Any,
    eval_batches,
    max_images: int = 0,
    num_summaries: int = 0,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, float], list[np.ndarray]]:
    """PSNR/SSIM of the blurred inputs and the restored outputs on full eval images, by the
    evaluate command's loop (`scoring.evaluate_images`), and up to `num_summaries`
    blurred | restored | sharp image grids.

    `stop()` is checked between batches; when it turns true the evaluation is abandoned and
    returns no metrics (a partial mean must not pick the best checkpoint)."""
    restore = inference.make_restore_fn(generator)
    grids: list[np.ndarray] = []
    stopped = False

    def batches():
        nonlocal stopped
        seen = 0
        for batch in eval_batches:
            if stop():
                stopped = True
                return
            yield batch
            seen += len(batch["name"])
            if max_images and seen >= max_images:
                return

    def keep_grid(name, blurred8, restored8, sharp8):
        del name
        if len(grids) < num_summaries:
            grids.append(np.concatenate([blurred8, restored8, sharp8], axis=1))

    rows = scoring.evaluate_images(
        lambda b: restore(g_params, jnp.asarray(b)),
        batches(),
        ("psnr", "ssim"),
        on_images=keep_grid,
        warm_up=False,
    )
    if stopped:
        return {}, []
    if not rows:
        return {}, grids
    table = np.array(
        [
            [r["psnr_blurred"], r["psnr"], r["ssim_blurred"], r["ssim"]]
            for r in rows[: max_images or None]
        ],
        np.float32,
    )
    names = ("eval_psnr_blurred", "eval_psnr", "eval_ssim_blurred", "eval_ssim")
    # SSIM is undefined (NaN) on images below its 11x11 window: averaged over the others.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of NaN only stays NaN
        means = np.nanmean(table, axis=0)
    return {n: float(v) for n, v in zip(names, means)}, grids


# --------------------------------------------------------------------------------------------
# The loop.


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


# What the divergence check looks at: the two total losses (every loss term is part of one of
# them) and the gradient norms. Metrics such as the training PSNR are not losses: a flat crop
# that the identity generator restores exactly has a legitimately perfect PSNR.
DIVERGENCE_METRICS = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")


def check_finite(summary: Mapping[str, float], step: int) -> None:
    """Raises NonFiniteLossError when a loss or gradient norm of `summary` is NaN or infinite."""
    bad = {
        k: summary[k] for k in DIVERGENCE_METRICS if k in summary and not math.isfinite(summary[k])
    }
    if bad:
        raise NonFiniteLossError(
            f"non-finite loss at step {step}: "
            + ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary.items()))
        )


def _host_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(np.mean(np.asarray(v))) for k, v in metrics.items()}


def _mean_metrics(host_metrics: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([m[k] for m in host_metrics])) for k in host_metrics[0]}


class Interrupted(Exception):
    """Training stopped on Ctrl-C (SIGINT) or SIGTERM; `step` is what the run directory holds."""

    def __init__(self, step: int, saved: bool):
        self.step, self.saved = step, saved
        super().__init__(
            f"stopped at step {step}; "
            + ("a checkpoint of it was saved" if saved else "the latest checkpoint is kept")
            + ": run the same command to resume"
        )


class StopRequests:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so a stop never cuts a
    step or a checkpoint save in half. A second Ctrl-C exits at once (130): the checkpoints on
    disk are complete, since Orbax writes each into a temporary folder and renames it.

    The acknowledgement is written without a newline: `Interrupted`'s message (printed by
    train.py) completes the same line, so a stop reads as one line on stderr."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        del frame
        if self.requested and signum == signal.SIGINT:
            sys.stderr.write(
                "\nsecond Ctrl-C: stopped without saving; the latest complete checkpoint is kept\n"
            )
            sys.stderr.flush()
            os._exit(130)
        if not self.requested:
            sys.stderr.write(
                "\ninterrupted: finishing the current step (Ctrl-C again to stop at once)... "
            )
            sys.stderr.flush()
        self.requested = True

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _prepare_workdir(workdir: str) -> None:
    """UnusableWorkdir for a workdir that cannot be a folder (it, or a parent, is a file)."""
    path = os.path.abspath(workdir)
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if os.path.exists(path) and not os.path.isdir(path):
        raise checkpoints.UnusableWorkdir(f"--workdir {workdir}: {path} is a file, not a folder")


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, progress: bool = True
) -> TrainState:
    """Trains to `config.num_steps`, resuming from the latest checkpoint in `workdir`.

    Runs on `config.num_devices` devices of each process ('pmap' or 'sharding' driver, see
    parallel.py) and, with `config.distributed`, on several processes: every process runs this
    function; each reads its slice of every global batch and only process 0 writes the config,
    TensorBoard summaries, images and messages. Returns one (unreplicated) copy of the state.

    Nothing is written to `workdir` before the config is validated and, on a resume, compared
    with the run's stored config (config_lib.ConfigError names the fields). SIGINT/SIGTERM stop
    the run after the current step, with a checkpoint of it: `Interrupted`.
    """
    from deblurgan_jax.data import pipeline  # TensorFlow only where data is needed.
    from deblurgan_jax.training import parallel
    from flax.metrics import tensorboard
    from tqdm import tqdm

    config_lib.validate(config)
    _prepare_workdir(workdir)
    keep_remat_barriers(config)  # before JAX starts its backend
    parallel.initialize_distributed(config.distributed)  # before JAX touches a device
    plan = parallel.create(config)
    is_main = jax.process_index() == 0
    feature_params, preprocess = load_feature_params(config)
    if is_main:
        # The run's config, read back by evaluate/export to rebuild the networks.
        checkpoints.record_run_config(workdir, config)
    feature_params = plan.replicate(feature_params)
    networks = create_networks(config, preprocess)
    # One copy (the checkpoint layout) to restore into, then the driver's layout.
    state = plan.place_single_copy(create_train_state(config, networks))
    manager = checkpoints.checkpoint_manager(workdir, config.max_to_keep)
    latest = manager.latest_step()
    if latest is not None:
        try:
            state = checkpoints.restore_checkpoint(manager, state)
        except Exception as e:  # Orbax raises many types for a checkpoint that does not fit.
            manager.close()
            raise checkpoints.RunError(
                f"checkpoint {latest} in {os.path.join(workdir, checkpoints.CHECKPOINT_DIR)} "
                f"cannot be restored ({type(e).__name__}: {str(e)[:300]}); it may be damaged. "
                f"Delete that step's folder to resume from an earlier one."
            ) from None
        if is_main:
            print(f"resumed from step {checkpoints.local_int(state.step)} in {workdir}", flush=True)
    start = checkpoints.local_int(state.step)
    state = plan.from_single_copy(state)
    writer = tensorboard.SummaryWriter(os.path.join(workdir, "tensorboard")) if is_main else None
    if writer is not None and start == 0:
        writer.hparams(
            {
                k: v if isinstance(v, (int, float, str, bool)) else str(v)
                for k, v in config_lib.flatten(config).items()
            }
        )

    # 'fresh' critic batches are n_critic consecutive global batches, stacked on a new leading
    # axis, so each host's slice of each of them is split over its devices (batch axis 1).
    fresh = config.critic_batches == "fresh"
    critic_batches = config.n_critic if fresh else 1
    train_batches = pipeline.create_train_dataset(
        config.data,
        batch_size=config.batch_size,
        crop_size=config.crop_size,
        seed=config.seed,
        start_index=start * critic_batches * config.batch_size,
    )
    train_iter = iter(train_batches)

    def next_batch():
        if not fresh:
            return plan.shard_batch(next(train_iter))
        batches = [next(train_iter) for _ in range(critic_batches)]
        stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
        return plan.shard_batch(stacked, axis=1)

    step_fn = plan.compile_step(
        functools.partial(train_step, networks=networks, config=config),
        batch_axis=1 if fresh else 0,
    )

    def eval_batches():
        return pipeline.create_eval_dataset(config.data, batch_size=1)

    def log(message: str) -> None:
        if is_main:
            bar.write(message)

    bar = tqdm(
        total=config.num_steps,
        initial=start,
        disable=not (progress and is_main),
        desc="train",
        unit="step",
        dynamic_ncols=True,
    )
    last_log, last_time, in_flight, done_metrics = start, time.perf_counter(), None, []
    saved_step, done = start, start
    with StopRequests() as stop:
        try:
            for step in range(start, config.num_steps):
                if stop.requested:
                    break
                state, metrics = step_fn(state, next_batch(), feature_params)
                if step == start:  # the step is compiled (before its dispatch): free the rest
                    release_freed_host_memory()
                # Keep one step in flight and no more, so the progress bar and its ETA show
                # computed steps, not dispatched ones.
                if in_flight is not None:
                    done_metrics.append(_host_metrics(plan.local_copy(in_flight)))
                in_flight = metrics
                bar.update(1)
                done = step + 1
                if done % config.log_every == 0 or done == config.num_steps:
                    done_metrics.append(_host_metrics(plan.local_copy(in_flight)))
                    in_flight = None
                    summary = _mean_metrics(done_metrics)
                    done_metrics = []
                    check_finite(summary, done)
                    now = time.perf_counter()
                    summary["steps_per_second"] = (done - last_log) / max(now - last_time, 1e-9)
                    last_log, last_time = done, now
                    if writer is not None:
                        for k, v in summary.items():
                            writer.scalar(f"train/{k}", v, done)
                        writer.flush()
                    log(
                        f"step {done}: "
                        + ", ".join(
                            f"{k} {summary[k]:.4g}"
                            for k in (
                                "d_loss",
                                "gradient_penalty",
                                "wasserstein",
                                "g_adversarial",
                                "g_content",
                                "train_psnr",
                                "lr",
                            )
                            if k in summary
                        )
                    )
                eval_metrics = None
                if (
                    config.eval_every
                    and (done % config.eval_every == 0 or done == config.num_steps)
                    and not stop.requested
                ):
                    # Every process evaluates (the same numbers) so that all of them hand Orbax
                    # the same metrics for its best-checkpoint bookkeeping.
                    eval_metrics, grids = evaluate_generator(
                        networks.generator,
                        plan.local_copy(eval_params(state)),
                        eval_batches(),
                        config.eval_max_images,
                        config.num_image_summaries,
                        stop=lambda: stop.requested,
                    )
                    if writer is not None and eval_metrics:
                        for k, v in eval_metrics.items():
                            writer.scalar(f"eval/{k}", v, done)
                        for i, grid in enumerate(grids):
                            writer.image(f"eval/blurred_restored_sharp_{i}", grid, done)
                        writer.flush()
                    if eval_metrics:
                        log(
                            f"eval at step {done}: PSNR blurred "
                            f"{eval_metrics['eval_psnr_blurred']:.2f} dB -> restored "
                            f"{eval_metrics['eval_psnr']:.2f} dB, SSIM "
                            f"{eval_metrics['eval_ssim_blurred']:.4f} -> "
                            f"{eval_metrics['eval_ssim']:.4f}"
                        )
                if (
                    done % config.checkpoint_every == 0
                    or done == config.num_steps
                    or eval_metrics
                    or stop.requested
                ):
                    # Never checkpoint a state whose losses were not checked.
                    if in_flight is not None:
                        check_finite(_host_metrics(plan.local_copy(in_flight)), done)
                    checkpoints.save_checkpoint(
                        manager, plan.to_single_copy(state), eval_metrics or None
                    )
                    saved_step = done
        finally:
            bar.close()
            train_batches.close()
            manager.wait_until_finished()
            manager.close()
            if writer is not None:
                writer.close()
        if stop.requested and done < config.num_steps:
            raise Interrupted(done, saved=saved_step == done and done > start)
        if stop.requested:  # the stop came after the last step: the run is complete
            sys.stderr.write("the run had already finished\n")
    stats = train_batches.stats
    if is_main and (stats.unreadable or stats.padded or stats.replaced or stats.dropped):
        print(f"training data: {stats.summary()}", flush=True)
    return plan.local_copy(state)

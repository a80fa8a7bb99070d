"""The adversarial losses (L_GAN of the paper) as pure functions over arrays (NHWC, [-1, 1]).

The paper's objective is L = L_GAN + lambda * L_X with lambda = 100 (L_X: losses/content.py):
- L_GAN: a WGAN-GP critic (`wgan_gp_critic_loss`, penalty weight 10) and the generator loss
  -D(G(I_B)) (`wgan_generator_loss`). The original code's alternatives, selectable by name, are
  an LSGAN (`lsgan_*`) and a vanilla GAN (`gan_*`); `critic_loss` / `generator_adversarial_loss`
  dispatch on `kind` in `ADVERSARIAL_KINDS`.

The gradient penalty is the textbook one (Gulrajani et al., 2017): one uniform alpha per sample
and the L2 norm of the critic's input gradient over each whole sample (H, W and C). The original
DeblurGAN code draws one alpha for the whole batch and takes `gradients.norm(2, dim=1)`, a norm
over the channels of each pixel; this module deliberately does not copy that (tests show the two
differ).

Critics here are callables `critic_fn(x)` returning either one score per sample, shape (N,), or
the PatchCritic's patch map, shape (N, h, w, 1); `critic_scores` reduces the latter to (N,).

All losses are computed in float32 whatever the input dtype (bfloat16 activations are cast), are
jit-able, and are correct under `jax.grad` (including the double backward of the penalty) and
`jax.vmap`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from deblurgan_jax.losses.common import Array, as_float32 as _f32, check_kind as _check_kind

CriticFn = Callable[[Array], Array]

ADVERSARIAL_KINDS = ("wgan-gp", "lsgan", "gan")
CRITIC_REDUCTIONS = ("mean", "sum")

# Added to the squared gradient norm before the square root so that the penalty has a finite
# gradient where the critic's input gradient vanishes (d sqrt(s)/ds is infinite at s = 0). It is
# far below any squared norm float32 can represent meaningfully next to 1, so it does not move
# the penalty measurably.
GRADIENT_NORM_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# Critic scores and the gradient penalty.


def critic_scores(patch_scores: Array, reduction: str = "mean") -> Array:
    """Reduces critic outputs (N, h, w, 1) -- or any (N, ...) -- to one float32 score per sample.

    - 'mean' (default): the average patch score, the value the Wasserstein loss uses in both the
      paper and the original code (`D(x).mean()`).
    - 'sum': the sum over patches. The original code's penalty differentiates the patch map with
      `grad_outputs=ones`, i.e. the gradient of this sum; its input gradient is h*w times larger
      than that of the mean.

    An input that already has shape (N,) is returned unchanged (cast to float32).
    """
    if reduction not in CRITIC_REDUCTIONS:
        raise ValueError(
            f"critic score reduction must be one of {CRITIC_REDUCTIONS}, got {reduction!r}"
        )
    scores = _f32(patch_scores)
    axes = tuple(range(1, scores.ndim))
    return jnp.mean(scores, axis=axes) if reduction == "mean" else jnp.sum(scores, axis=axes)


def interpolate(real: Array, fake: Array, alpha: Array) -> Array:
    """x_hat = alpha * real + (1 - alpha) * fake with one alpha per sample, in float32.

    `alpha` has shape (N,) (draw it with `jax.random.uniform(key, (N,))`) and is broadcast over
    the remaining axes of `real` and `fake`.
    """
    real, fake, alpha = _f32(real), _f32(fake), _f32(alpha)
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {real.shape} and {fake.shape}"
        )
    if alpha.shape != real.shape[:1]:
        raise ValueError(
            f"alpha must have shape (N,) = {real.shape[:1]} (one value per sample), "
            f"got {alpha.shape}"
        )
    alpha = alpha.reshape(alpha.shape + (1,) * (real.ndim - 1))
    return alpha * real + (1.0 - alpha) * fake


def input_gradient_norms(critic_fn: CriticFn, x: Array, reduction: str = "mean") -> Array:
    """||d critic(x_n) / d x_n||_2 over each whole sample (all of H, W, C): shape (N,).

    `critic_fn(x)` returns (N,) scores or an (N, h, w, 1) patch map, reduced with `reduction`.
    The per-sample gradients come from one gradient of the SUM of the per-sample scores: this is
    exact because sample n's score depends on x_n only -- the critic couples no samples (it uses
    InstanceNorm, statistics per sample; BatchNorm would break this).
    """
    x = _f32(x)

    def total_score(inputs: Array) -> Array:
        return jnp.sum(critic_scores(critic_fn(inputs), reduction))

    grads = jax.grad(total_score)(x)
    squared = jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim)))
    return jnp.sqrt(squared + GRADIENT_NORM_EPS)


def gradient_penalty(
    critic_fn: CriticFn, real: Array, fake: Array, alpha: Array, reduction: str = "mean"
) -> Array:
    """The WGAN-GP penalty mean_n (||grad_x critic(x_hat_n)||_2 - 1)^2, unweighted (scalar).

    x_hat_n = alpha_n * real_n + (1 - alpha_n) * fake_n with one alpha per sample (shape (N,),
    drawn by the caller), and the norm taken over each whole sample. `reduction` applies when
    `critic_fn` returns a patch map (see `critic_scores`); 'sum' gives the gradient the original
    code penalises. The weight (10 in the paper) is applied by `wgan_gp_critic_loss`.
    """
    x_hat = interpolate(real, fake, alpha)
    norms = input_gradient_norms(critic_fn, x_hat, reduction)
    return jnp.mean(jnp.square(norms - 1.0))


# --------------------------------------------------------------------------------------------
# Adversarial losses.


def wgan_gp_critic_loss(
    critic_fn: CriticFn,
    real: Array,
    fake: Array,
    alpha: Array,
    gp_weight: float = 10.0,
    reduction: str = "mean",
) -> tuple[Array, dict[str, Array]]:
    """WGAN-GP critic loss: mean D(fake) - mean D(real) + gp_weight * gradient_penalty.

    The Wasserstein term always averages patch scores ('mean'); `reduction` selects the
    per-sample score whose input gradient is penalised ('sum' = the original code). With a
    `critic_fn` that already returns (N,) scores, both terms use those scores as they are.
    `fake` should be `stop_gradient`-ed by the caller when only the critic is trained.

    Returns `(loss, aux)`, aux holding float32 scalars 'd_real', 'd_fake', 'gradient_penalty'
    (unweighted) and 'wasserstein' (= d_real - d_fake, the critic's estimate of the distance).
    """
    d_real = jnp.mean(critic_scores(critic_fn(real), "mean"))
    d_fake = jnp.mean(critic_scores(critic_fn(fake), "mean"))
    penalty = gradient_penalty(critic_fn, real, fake, alpha, reduction)
    loss = d_fake - d_real + gp_weight * penalty
    aux = {
        "d_real": d_real,
        "d_fake": d_fake,
        "gradient_penalty": penalty,
        "wasserstein": d_real - d_fake,
    }
    return loss, aux


def wgan_generator_loss(fake_scores: Array) -> Array:
    """-mean D(G(I_B)) over all samples and patches."""
    return -jnp.mean(_f32(fake_scores))


def lsgan_critic_loss(real_scores: Array, fake_scores: Array) -> tuple[Array, dict[str, Array]]:
    """Least-squares critic loss 0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2), averaged over
    every patch score (as the original's loss on the whole patch map).

    The original code's 'lsgan' option actually uses an L1 criterion (`GANLoss(use_l1=True)`),
    which is not a least-squares GAN; this is the least-squares form (Mao et al., 2017).
    """
    real_scores, fake_scores = _f32(real_scores), _f32(fake_scores)
    loss = 0.5 * (jnp.mean(jnp.square(real_scores - 1.0)) + jnp.mean(jnp.square(fake_scores)))
    return loss, {"d_real": jnp.mean(real_scores), "d_fake": jnp.mean(fake_scores)}


def lsgan_generator_loss(fake_scores: Array) -> Array:
    """mean (D(G(I_B)) - 1)^2."""
    return jnp.mean(jnp.square(_f32(fake_scores) - 1.0))


def gan_critic_loss(real_logits: Array, fake_logits: Array) -> tuple[Array, dict[str, Array]]:
    """Vanilla GAN critic loss 0.5 * (BCE(D(real), 1) + BCE(D(fake), 0)) on logits.

    The original code puts a sigmoid in the network and uses `nn.BCELoss`; the critic here has no
    sigmoid, so the cross-entropy is taken on logits (log-sum-exp form: finite for any logit).
    """
    real_logits, fake_logits = _f32(real_logits), _f32(fake_logits)
    loss = 0.5 * (
        jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits)))
        + jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits)))
    )
    return loss, {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}


def gan_generator_loss(fake_logits: Array) -> Array:
    """Non-saturating generator loss BCE(D(G(I_B)), 1) on logits."""
    fake_logits = _f32(fake_logits)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)))


def critic_loss(
    kind: str,
    critic_fn: CriticFn,
    real: Array,
    fake: Array,
    alpha: Array | None = None,
    *,
    gp_weight: float = 10.0,
    reduction: str = "mean",
) -> tuple[Array, dict[str, Array]]:
    """The critic loss selected by `kind` in ADVERSARIAL_KINDS; returns `(loss, aux)`.

    'wgan-gp' needs `alpha` (shape (N,)) and uses `gp_weight` and `reduction`; 'lsgan' and 'gan'
    apply their criterion to every score `critic_fn` returns (pass a critic_fn that returns the
    patch map to score each patch, as the original code does) and ignore the other arguments.
    """
    _check_kind(kind, ADVERSARIAL_KINDS, "adversarial loss kind")
    if kind == "wgan-gp":
        if alpha is None:
            raise ValueError(
                "the 'wgan-gp' critic loss needs alpha, one interpolation weight "
                "per sample: jax.random.uniform(key, (N,))"
            )
        return wgan_gp_critic_loss(critic_fn, real, fake, alpha, gp_weight, reduction)
    real_scores, fake_scores = critic_fn(real), critic_fn(fake)
    if kind == "lsgan":
        return lsgan_critic_loss(real_scores, fake_scores)
    return gan_critic_loss(real_scores, fake_scores)


def generator_adversarial_loss(kind: str, fake_scores: Array) -> Array:
    """The generator's adversarial loss selected by `kind` in ADVERSARIAL_KINDS, from the
    critic's scores (any shape) of the restored images."""
    _check_kind(kind, ADVERSARIAL_KINDS, "adversarial loss kind")
    if kind == "wgan-gp":
        return wgan_generator_loss(fake_scores)
    if kind == "lsgan":
        return lsgan_generator_loss(fake_scores)
    return gan_generator_loss(fake_scores)

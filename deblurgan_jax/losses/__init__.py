"""DeblurGAN's losses: L = L_GAN (losses/adversarial.py) + lambda * L_X (losses/content.py).

Everything public is re-exported here, so `losses.critic_loss(...)` and
`losses.content_loss(...)` work without naming the module.
"""

from deblurgan_jax.losses.adversarial import (
    ADVERSARIAL_KINDS,
    CRITIC_REDUCTIONS,
    GRADIENT_NORM_EPS,
    critic_loss,
    critic_scores,
    gan_critic_loss,
    gan_generator_loss,
    generator_adversarial_loss,
    gradient_penalty,
    input_gradient_norms,
    interpolate,
    lsgan_critic_loss,
    lsgan_generator_loss,
    wgan_generator_loss,
    wgan_gp_critic_loss,
)
from deblurgan_jax.losses.content import CONTENT_KINDS, content_loss, l1_loss, perceptual_loss

__all__ = (
    "ADVERSARIAL_KINDS",
    "CONTENT_KINDS",
    "CRITIC_REDUCTIONS",
    "GRADIENT_NORM_EPS",
    "critic_scores",
    "interpolate",
    "input_gradient_norms",
    "gradient_penalty",
    "wgan_gp_critic_loss",
    "wgan_generator_loss",
    "lsgan_critic_loss",
    "lsgan_generator_loss",
    "gan_critic_loss",
    "gan_generator_loss",
    "critic_loss",
    "generator_adversarial_loss",
    "perceptual_loss",
    "l1_loss",
    "content_loss",
)

"""deblurgan-jax: DeblurGAN (Kupyn et al., CVPR 2018) in JAX/Flax."""

__version__ = "0.1.0"

"""deblurgan-jax: DeblurGAN (Kupyn et al., CVPR 2018) in JAX/Flax.

    from deblurgan_jax import Deblurrer
    deblurrer = Deblurrer.from_params("generator.msgpack")
    sharp = deblurrer(blurred)          # uint8 NumPy array or PIL image, any size

`Deblurrer` (deblurgan_jax/api.py) is imported on first use, so `import deblurgan_jax` stays
cheap (no JAX, TensorFlow or Flax until then).
"""

__version__ = "0.2.0"
__all__ = ["Deblurrer", "__version__"]


def __getattr__(name: str):
    if name == "Deblurrer":
        from deblurgan_jax.api import Deblurrer

        return Deblurrer
    raise AttributeError(f"module 'deblurgan_jax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"Deblurrer"})

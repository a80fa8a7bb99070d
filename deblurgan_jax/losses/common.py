"""What the losses share: float32 computation and the check of a loss kind's name."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def as_float32(x: Array) -> Array:
    """Losses are computed in float32 whatever the input dtype (bfloat16 activations are cast)."""
    return jnp.asarray(x).astype(jnp.float32)


def check_kind(kind: str, valid: tuple[str, ...], what: str) -> None:
    if kind not in valid:
        raise ValueError(f"unknown {what} {kind!r}; valid kinds: {', '.join(valid)}")

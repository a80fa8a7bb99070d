"""The content losses (L_X of the paper) as pure functions over arrays (NHWC, [-1, 1]).

L_X is the perceptual loss, MSE between VGG conv3_3 features of the restored and the sharp image
(`perceptual_loss`), or an L1 pixel loss (`l1_loss`); `content_loss` dispatches on `kind` in
`CONTENT_KINDS`. The weight lambda (100 in the paper) is applied by the train step, not here.
Computed in float32 whatever the input dtype; jit-able and correct under `jax.grad`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from deblurgan_jax.losses.common import Array, as_float32 as _f32, check_kind as _check_kind

FeaturesFn = Callable[[Array], Array]

CONTENT_KINDS = ("perceptual", "l1")


# --------------------------------------------------------------------------------------------
# Content losses. The paper's lambda (100) multiplies them in the train step.


def perceptual_loss(features_fn: FeaturesFn, restored: Array, sharp: Array) -> Array:
    """MSE between `features_fn(restored)` and `features_fn(sharp)` (the paper's L_X).

    `features_fn` maps NHWC images to feature maps, e.g.
    `lambda x: VGGFeatures(...).apply({'params': vgg_params}, x)` (conv3_3). No gradient flows
    through the sharp image's features (`stop_gradient`, the original's `.detach()`). The
    content weight (lambda = 100 in the paper) is applied by the caller, not here.
    """
    restored_features = _f32(features_fn(restored))
    sharp_features = jax.lax.stop_gradient(_f32(features_fn(sharp)))
    return jnp.mean(jnp.square(restored_features - sharp_features))


def l1_loss(restored: Array, sharp: Array) -> Array:
    """Mean absolute pixel difference (the original code's 'pix2pix' content loss). The content
    weight is applied by the caller."""
    return jnp.mean(jnp.abs(_f32(restored) - _f32(sharp)))


def content_loss(
    kind: str, restored: Array, sharp: Array, *, features_fn: FeaturesFn | None = None
) -> Array:
    """The content loss selected by `kind` in CONTENT_KINDS ('perceptual' needs `features_fn`).
    Unweighted: the train step multiplies it by lambda (100 in the paper)."""
    _check_kind(kind, CONTENT_KINDS, "content loss kind")
    if kind == "perceptual":
        if features_fn is None:
            raise ValueError(
                "the 'perceptual' content loss needs features_fn, e.g. "
                "lambda x: VGGFeatures(...).apply({'params': vgg_params}, x)"
            )
        return perceptual_loss(features_fn, restored, sharp)
    return l1_loss(restored, sharp)

"""Serving formats of the generator: a TF SavedModel (jax2tf) and an ONNX model.

- saved_model: a TF SavedModel whose serving signature takes uint8 images of any size
  (N, H, W, 3) and returns uint8 images of the same size (reflect-padded to multiples of 4 inside,
  as `inference.restore`). The generator is the JAX function itself, lowered with `jax2tf`
  (StableHLO in an XlaCallModule op, shape-polymorphic in N, H, W), for CPU and CUDA by default.
- onnx: an ONNX model with the same uint8 signature. jax2tf can only emit XlaCallModule, which
  tf2onnx cannot read, so this path rebuilds the generator from plain TensorFlow ops
  (`tf_generator`) and converts that with tf2onnx. Needs the optional packages of
  requirements-export.txt. Tests check both exports against the JAX model within 1/255.
The model config is written beside every export as `<out without extension>.json`.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from deblurgan_jax.utils import files
from deblurgan_jax.weights import checkpoints
from deblurgan_jax.networks import models
from deblurgan_jax.weights.checkpoints import model_config_path, to_numpy

# --------------------------------------------------------------------------------------------
# TensorFlow: the uint8 serving wrapper, the SavedModel (jax2tf) and ONNX (plain TF ops).

MULTIPLE = 4  # two stride-2 stages


def serve_uint8(generator_tf: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wraps a TF generator on [-1, 1] floats (H, W multiples of 4) into uint8 -> uint8 of any
    size: reflect-pad bottom/right, run, crop, round half to even (as `metrics.to_uint8_range`)."""
    import tensorflow as tf

    def serve(images):
        x = tf.cast(images, tf.float32) / 127.5 - 1.0
        shape = tf.shape(x)
        height, width = shape[1], shape[2]
        # (m - h % m) % m, not (-h) % m: ONNX's integer Mod of a negative number is C's.
        pad_h = (MULTIPLE - height % MULTIPLE) % MULTIPLE
        pad_w = (MULTIPLE - width % MULTIPLE) % MULTIPLE
        x = tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")
        y = generator_tf(x)[:, :height, :width, :]
        return tf.cast(tf.round(tf.clip_by_value((y + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)

    return serve


def _jax_generator_fn(model_config: Mapping[str, Any]):
    # XLA's convolutions: the SavedModel is lowered for CPU and CUDA alike.
    generator = models.build_generator(model_config, conv_impl="xla")
    return lambda params, x: generator.apply({"params": params}, x, deterministic=True)


def export_saved_model(
    params: Mapping[str, Any],
    model_config: Mapping[str, Any],
    path: str,
    platforms: Sequence[str] = ("cpu", "cuda"),
    overwrite: bool = False,
) -> None:
    """Writes a SavedModel with a `serving_default` signature: uint8 (N, H, W, 3) ->
    {'restored': uint8 (N, H, W, 3)}; the weights are variables of the SavedModel."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    _check_target(path, overwrite)
    converted = jax2tf.convert(
        _jax_generator_fn(model_config),
        with_gradient=False,
        polymorphic_shapes=[None, f"(b, {MULTIPLE}*h, {MULTIPLE}*w, 3)"],
        # The 3x3 reflection pads at 1/4 resolution need 2 pixels: inputs of at least 8x8.
        polymorphic_constraints=("h >= 2", "w >= 2"),
        native_serialization_platforms=tuple(platforms),
    )
    module = tf.Module()
    module.params = tf.nest.map_structure(
        lambda a: tf.Variable(a, trainable=False), to_numpy(params)
    )
    serve = serve_uint8(lambda x: converted(module.params, x))
    module.serve = tf.function(
        lambda images: {"restored": serve(images)},
        autograph=False,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    tmp = path.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
    _replace(tmp, path)
    _write_config(model_config, path, {"format": "saved_model", "platforms": list(platforms)})


def tf_generator(
    params: Mapping[str, Any], model_config: Mapping[str, Any]
) -> Callable[[Any], Any]:
    """The deterministic ResnetGenerator in plain TensorFlow ops (NHWC, [-1, 1], H and W
    multiples of 4), for ONNX export only.

    Why a second definition: tf2onnx converts TensorFlow graphs, and the only TensorFlow graph
    JAX can emit (jax2tf) is one XlaCallModule op holding StableHLO, which tf2onnx cannot read
    (and jax2onnx pins an older orbax). So ONNX needs the generator spelled in plain TF ops. It
    mirrors models.ResnetGenerator layer by layer; tests/test_export.py checks the two agree.
    """
    import tensorflow as tf

    p = to_numpy(params)
    config = checkpoints.full_generator_config(model_config)
    const = lambda a: tf.constant(np.asarray(a, np.float32))  # noqa: E731

    def norm(x):
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        var = tf.reduce_mean(tf.square(x - mean), axis=[1, 2], keepdims=True)
        return (x - mean) / tf.sqrt(var + models.INSTANCE_NORM_EPS)

    def reflect_conv(x, layer, bias=False):
        k = layer["conv"]["kernel"]
        r = k.shape[0] // 2
        x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
        y = tf.nn.conv2d(x, const(k), 1, "VALID")
        return y + const(layer["conv"]["bias"]) if bias else y

    def down(x, layer):
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        return tf.nn.conv2d(x, const(layer["kernel"]), 2, "VALID")

    def up(x, layer):
        # flax ConvTranspose(strides 2, padding ((1, 2), (1, 2)), transpose_kernel=True) =
        # insert a zero after every pixel, pad (1, 1), correlate with the spatially flipped
        # kernel with in/out swapped (the trailing inserted zero is the second bottom/right pad).
        k = np.swapaxes(layer["kernel"][::-1, ::-1], 2, 3)
        shape = tf.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
        x = tf.reshape(tf.stack([x, tf.zeros_like(x)], axis=2), [n, 2 * h, w, c])
        x = tf.reshape(tf.stack([x, tf.zeros_like(x)], axis=3), [n, 2 * h, 2 * w, c])
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        return tf.nn.conv2d(x, const(k), 1, "VALID")

    def generator(x):
        h = tf.nn.relu(norm(reflect_conv(x, p["stem"])))
        h = tf.nn.relu(norm(down(h, p["down_1"])))
        h = tf.nn.relu(norm(down(h, p["down_2"])))
        for b in range(config["n_blocks"]):
            block = p[f"block_{b}"]
            y = tf.nn.relu(norm(reflect_conv(h, block["conv_0"])))
            h = h + norm(reflect_conv(y, block["conv_1"]))
        h = tf.nn.relu(norm(up(h, p["up_1"])))
        h = tf.nn.relu(norm(up(h, p["up_2"])))
        out = tf.tanh(reflect_conv(h, p["head"], bias=True))
        return tf.clip_by_value(x + out, -1.0, 1.0) if config["learn_residual"] else out

    return generator


def export_onnx(
    params: Mapping[str, Any],
    model_config: Mapping[str, Any],
    path: str,
    opset: int = 17,
    overwrite: bool = False,
) -> None:
    """Writes an ONNX model: input 'images' uint8 (N, H, W, 3), output 'restored' uint8."""
    import tensorflow as tf

    try:
        import tf2onnx
    except ImportError:
        raise ImportError(
            "ONNX export needs tf2onnx and onnxruntime: pip install -r requirements-export.txt"
        ) from None

    _check_target(path, overwrite)
    serve = serve_uint8(tf_generator(params, model_config))
    fn = tf.function(lambda images: tf.identity(serve(images), name="restored"), autograph=False)
    spec = [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    model, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    _rename_onnx_io(
        model, {model.graph.input[0].name: "images", model.graph.output[0].name: "restored"}
    )
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)
    _write_config(model_config, path, {"format": "onnx", "opset": opset})


def _rename_onnx_io(model: Any, names: Mapping[str, str]) -> None:
    """tf2onnx names the graph's inputs and outputs after TF tensors ('images:0', 'Identity:0');
    give them the SavedModel's names."""
    for node in model.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        value.name = names.get(value.name, value.name)


def _check_target(path: str, overwrite: bool) -> None:
    for target in (path, model_config_path(path)):
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(
                f"{target} exists; pass overwrite=True (--overwrite) to replace it"
            )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _replace(tmp: str, path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    os.replace(tmp, path)


def _write_config(model_config: Mapping[str, Any], path: str, extra: Mapping[str, Any]) -> None:
    config = checkpoints.full_generator_config(model_config)
    files.write_atomic(
        model_config_path(path), checkpoints.to_json({**config, "export": dict(extra)})
    )

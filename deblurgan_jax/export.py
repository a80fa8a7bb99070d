"""Generator export: a params file, a TF SavedModel or an ONNX model, and the export command.

    python -m deblurgan_jax.export (--workdir DIR [--which latest|best] | --params FILE)
        --out PATH [--format params|saved_model|onnx]

- params (default): `save_generator(params, model_config, path)` writes `path` (msgpack of the
  params pytree) and `<path without extension>.json` (the `ResnetGenerator` fields), loadable
  without the training code or its optimiser state: `params, model_config = load_generator(path)`.
- saved_model: a TF SavedModel whose serving signature takes uint8 images of any size
  (N, H, W, 3) and returns uint8 images of the same size (reflect-padded to multiples of 4 inside,
  as `evaluate.restore`). The generator is the JAX function itself, lowered with `jax2tf`
  (StableHLO in an XlaCallModule op, shape-polymorphic in N, H, W), for CPU and CUDA by default.
- onnx: an ONNX model with the same uint8 signature. jax2tf can only emit XlaCallModule, which
  tf2onnx cannot read, so this path rebuilds the generator from plain TensorFlow ops
  (`tf_generator`: reflection pads, convolutions, instance norm, a transposed convolution written
  as zero insertion + convolution) and converts that with tf2onnx. Needs the optional packages of
  requirements-export.txt. Tests check both exports against the JAX model within 1/255.
The model config is written beside every export as `<out without extension>.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from flax import serialization

GENERATOR_FIELDS = ("ngf", "n_blocks", "dropout_rate", "learn_residual", "out_channels")
DEFAULT_GENERATOR_CONFIG = {"ngf": 64, "n_blocks": 9, "dropout_rate": 0.5,
                            "learn_residual": True, "out_channels": 3}


class ParamsFileError(ValueError):
    """A params file is missing, truncated or not a deblurgan-jax generator file."""


def model_config_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def save_generator(params: Mapping[str, Any], model_config: Mapping[str, Any], path: str,
                   overwrite: bool = False) -> None:
    """Writes generator params (msgpack) and their model config (JSON beside them)."""
    config = {k: model_config[k] for k in GENERATOR_FIELDS if k in model_config}
    unknown = set(model_config) - set(GENERATOR_FIELDS)
    if unknown:
        raise ValueError(f"unknown generator config fields {sorted(unknown)}; "
                         f"expected some of {GENERATOR_FIELDS}")
    for target in (path, model_config_path(path)):
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) "
                                  f"to replace it")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = serialization.msgpack_serialize(_to_numpy(params))
    # Write to a temporary name first so an interrupted write never leaves a half file.
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    with open(model_config_path(path), "w") as f:
        json.dump({**DEFAULT_GENERATOR_CONFIG, **config}, f, indent=2, sort_keys=True)


def load_generator(path: str) -> tuple[dict, dict]:
    """Reads `(params, model_config)` written by `save_generator`; clear errors on bad files."""
    if not os.path.isfile(path):
        raise ParamsFileError(f"params file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        params = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several types for truncated/corrupt data.
        raise ParamsFileError(f"{path} is not a readable params file (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from None
    if not isinstance(params, dict) or "stem" not in params:
        found = sorted(params)[:8] if isinstance(params, dict) else type(params).__name__
        raise ParamsFileError(f"{path} does not hold ResnetGenerator params "
                              f"(top-level keys: {found})")
    config = dict(DEFAULT_GENERATOR_CONFIG)
    cpath = model_config_path(path)
    if os.path.isfile(cpath):
        with open(cpath) as f:
            try:
                config.update(json.load(f))
            except json.JSONDecodeError as e:
                raise ParamsFileError(f"{cpath}: invalid JSON: {e}") from None
    else:
        # Infer what the weights themselves say; the rest keeps the paper's defaults.
        config["ngf"] = int(params["stem"]["conv"]["kernel"].shape[-1])
        config["n_blocks"] = sum(1 for k in params if k.startswith("block_"))
    check_params_shapes(params, config, path)
    return params, config


def check_params_shapes(params: Mapping[str, Any], model_config: Mapping[str, Any],
                        path: str = "params") -> None:
    """Raises ParamsFileError naming the arrays that do not fit the model config."""
    import jax

    from deblurgan_jax import models

    generator = models.ResnetGenerator(**{k: model_config[k] for k in GENERATOR_FIELDS})
    expected = jax.eval_shape(lambda: generator.init(jax.random.key(0),
                                                     np.zeros((1, 32, 32, 3), np.float32)))
    want = _flat_shapes(expected["params"])
    have = _flat_shapes(params)
    problems = [f"{k}: missing" for k in sorted(set(want) - set(have))]
    problems += [f"{k}: unexpected" for k in sorted(set(have) - set(want))]
    problems += [f"{k}: shape {have[k]}, expected {want[k]}"
                 for k in sorted(set(want) & set(have)) if have[k] != want[k]]
    if problems:
        raise ParamsFileError(
            f"{path} does not match the generator config {dict(model_config)}: "
            + "; ".join(problems[:6]) + (f" (and {len(problems) - 6} more)"
                                         if len(problems) > 6 else ""))


def _flat_shapes(tree: Any, prefix: str = "") -> dict[str, tuple[int, ...]]:
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out.update(_flat_shapes(v, f"{prefix}{k}/"))
        return out
    return {prefix.rstrip("/"): tuple(np.shape(tree))}


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


# --------------------------------------------------------------------------------------------
# TensorFlow: the uint8 serving wrapper, the SavedModel (jax2tf) and ONNX (plain TF ops).

MULTIPLE = 4  # two stride-2 stages


def serve_uint8(generator_tf: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wraps a TF generator on [-1, 1] floats (H, W multiples of 4) into uint8 -> uint8 of any
    size: reflect-pad bottom/right, run, crop, round half to even (as `evaluate.to_uint8_range`)."""
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
    from deblurgan_jax import models

    generator = models.ResnetGenerator(**{k: model_config[k] for k in GENERATOR_FIELDS})
    return lambda params, x: generator.apply({"params": params}, x, deterministic=True)


def export_saved_model(params: Mapping[str, Any], model_config: Mapping[str, Any], path: str,
                       platforms: Sequence[str] = ("cpu", "cuda"),
                       overwrite: bool = False) -> None:
    """Writes a SavedModel with a `serving_default` signature: uint8 (N, H, W, 3) ->
    {'restored': uint8 (N, H, W, 3)}; the weights are variables of the SavedModel."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    _check_target(path, overwrite)
    converted = jax2tf.convert(
        _jax_generator_fn(model_config), with_gradient=False,
        polymorphic_shapes=[None, f"(b, {MULTIPLE}*h, {MULTIPLE}*w, 3)"],
        # The 3x3 reflection pads at 1/4 resolution need 2 pixels: inputs of at least 8x8.
        polymorphic_constraints=("h >= 2", "w >= 2"),
        native_serialization_platforms=tuple(platforms))
    module = tf.Module()
    module.params = tf.nest.map_structure(lambda a: tf.Variable(a, trainable=False),
                                          _to_numpy(params))
    serve = serve_uint8(lambda x: converted(module.params, x))
    module.serve = tf.function(
        lambda images: {"restored": serve(images)}, autograph=False,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    tmp = path.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
    _replace(tmp, path)
    _write_config(model_config, path, {"format": "saved_model", "platforms": list(platforms)})


def tf_generator(params: Mapping[str, Any], model_config: Mapping[str, Any]
                 ) -> Callable[[Any], Any]:
    """The deterministic ResnetGenerator in plain TensorFlow ops (NHWC, [-1, 1], H and W
    multiples of 4); mirrors models.ResnetGenerator layer by layer."""
    import tensorflow as tf
    from deblurgan_jax import models

    p = _to_numpy(params)
    config = {**DEFAULT_GENERATOR_CONFIG, **model_config}
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


def export_onnx(params: Mapping[str, Any], model_config: Mapping[str, Any], path: str,
                opset: int = 17, overwrite: bool = False) -> None:
    """Writes an ONNX model: input 'images' uint8 (N, H, W, 3), output 'restored' uint8."""
    import tensorflow as tf
    try:
        import tf2onnx
    except ImportError:
        raise ImportError("ONNX export needs tf2onnx and onnxruntime: "
                          "pip install -r requirements-export.txt") from None

    _check_target(path, overwrite)
    serve = serve_uint8(tf_generator(params, model_config))
    fn = tf.function(lambda images: tf.identity(serve(images), name="restored"),
                     autograph=False)
    spec = [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    model, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    _rename_onnx_io(model, {model.graph.input[0].name: "images",
                            model.graph.output[0].name: "restored"})
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
            raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) "
                                  f"to replace it")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _replace(tmp: str, path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    os.replace(tmp, path)


def _write_config(model_config: Mapping[str, Any], path: str, extra: Mapping[str, Any]) -> None:
    config = {**DEFAULT_GENERATOR_CONFIG,
              **{k: model_config[k] for k in GENERATOR_FIELDS if k in model_config}}
    with open(model_config_path(path.rstrip("/")), "w") as f:
        json.dump({**config, "export": dict(extra)}, f, indent=2, sort_keys=True)


# --------------------------------------------------------------------------------------------
# The command.

FORMATS = ("params", "saved_model", "onnx")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deblurgan_jax.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("generator (one of)")
    src.add_argument("--workdir", help="training directory (train.py --workdir)")
    src.add_argument("--which", choices=("latest", "best"), default="latest",
                     help="checkpoint of --workdir: the latest, or the best by eval PSNR")
    src.add_argument("--params", help="a params file (e.g. converted official weights: "
                                      "python -m deblurgan_jax.convert generator ...)")
    p.add_argument("--out", required=True,
                   help="output: a file (params: .msgpack; onnx: .onnx) or a folder "
                        "(saved_model); the model config is written beside it as .json")
    p.add_argument("--format", choices=FORMATS, default="params",
                   help="params (default), saved_model (TF, uint8 in/out) or onnx")
    p.add_argument("--platforms", default="cpu,cuda",
                   help="saved_model: comma-separated platforms to lower for (cpu, cuda, rocm, "
                        "tpu); default cpu,cuda")
    p.add_argument("--opset", type=int, default=17, help="onnx: ONNX opset (default 17)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from deblurgan_jax.evaluate import CommandError, load_generator_source

    args = build_parser().parse_args(argv)
    try:
        params, model_config, provenance = load_generator_source(args.workdir, args.which,
                                                                 args.params)
        if args.format == "params":
            save_generator(params, model_config, args.out, overwrite=args.overwrite)
        elif args.format == "saved_model":
            platforms = [s.strip() for s in args.platforms.split(",") if s.strip()]
            export_saved_model(params, model_config, args.out, platforms, args.overwrite)
        else:
            export_onnx(params, model_config, args.out, args.opset, args.overwrite)
    except (CommandError, FileExistsError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    step = f" (step {provenance['step']})" if "step" in provenance else ""
    print(f"wrote {args.format} {args.out}{step} and {model_config_path(args.out.rstrip('/'))}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

"""What a training run leaves on disk, and the generator params file.

A run directory (`train.py --workdir DIR`) holds:
- `config.json`: the config the run uses (written atomically, after validation, and only once
  the comparison with the stored one passed); `config.original.json`: the config of its first
  start, never rewritten; `config_changes.jsonl`: one line per resume that changed fields.
- `checkpoints/`: Orbax checkpoints of the full training state (the latest `max_to_keep` plus the
  best by eval PSNR). Saves are asynchronous and atomic: a save killed half-way leaves a
  temporary folder that restore ignores.
- `tensorboard/`: summaries.

`load_generator_from_workdir` restores only the generator's params (or their EMA) of a run,
with shapes from the run's model config; it needs nothing of the training code.

The generator params file (`save_generator` / `load_generator`): msgpack of the params pytree
(float32, or float16 to halve the file; loading always gives float32), with `<path without
extension>.json` beside it holding the `ResnetGenerator` fields and, optionally, a `provenance`
object (where the weights came from: recipe, steps, data, results).

The package ships one such file, the pretrained model (`load_pretrained`), under
`deblurgan_jax/pretrained/`: what the commands and `Deblurrer.pretrained()` use when no
`--params` or `--workdir` is given.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any, Mapping

import flax
import jax
import ml_collections
import numpy as np
from flax import serialization

from deblurgan_jax import config as config_lib
from deblurgan_jax.networks import models
from deblurgan_jax.utils import files

CONFIG_FILE = "config.json"
ORIGINAL_CONFIG_FILE = "config.original.json"
CHANGES_FILE = "config_changes.jsonl"
CHECKPOINT_DIR = "checkpoints"
WEIGHTS = ("auto", "ema", "raw")  # which generator weights of a run: EMA when present
PARAMS_DTYPES = ("float32", "float16")  # storage of a params file; loaded as float32
PROVENANCE_KEY = "provenance"
# Package data at deblurgan_jax/pretrained/ (this module is in deblurgan_jax/weights/).
PRETRAINED_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained"
)
PRETRAINED_NAME = "deblurgan_real_cpu"  # <name>.msgpack and <name>.json in PRETRAINED_DIR


class RunError(ValueError):
    """A run directory, checkpoint or params file is missing, unreadable or does not fit."""


class UnusableWorkdir(ValueError):
    """A run directory that cannot be created (it, or a parent, is a file): a usage error."""


class ParamsFileError(RunError):
    """A params file is missing, truncated or not a deblurgan-jax generator file."""


# --------------------------------------------------------------------------------------------
# Files.


def to_json(obj: Any) -> str:
    """Strict JSON (NaN and infinities as null: valid for every JSON reader)."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, np.integer)):
            return clean(x.item())
        return x

    return json.dumps(clean(obj), indent=2, sort_keys=True, allow_nan=False)


# --------------------------------------------------------------------------------------------
# A run's config.


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a training run in `workdir` uses."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise RunError(
            f"{path} not found: {workdir} is not a deblurgan-jax training directory "
            f"(train.py writes {CONFIG_FILE} when it starts)"
        )
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except (OSError, ValueError) as e:
        raise RunError(f"{path} is not a readable run config: {e}") from None


def record_run_config(workdir: str, config: ml_collections.ConfigDict) -> dict[str, tuple]:
    """Writes the run's config, comparing it with the stored one on a resume.

    Call after `config_lib.validate(config)`. On a resume, fields the checkpoints cannot follow
    raise ConfigError before anything is written; other changes are appended to
    `config_changes.jsonl` and `config.json` is replaced atomically (the first start's config
    stays in `config.original.json`). Returns the changes.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    changes: dict[str, tuple] = {}
    if os.path.isfile(path) and not has_checkpoints(workdir):
        # A start that failed before its first checkpoint (bad data path, Ctrl-C): nothing to
        # fit, so this is the run's real first start.
        for stale in (path, os.path.join(workdir, ORIGINAL_CONFIG_FILE)):
            if os.path.isfile(stale):
                os.remove(stale)
    if os.path.isfile(path):
        stored = read_run_config(workdir)
        changes = config_lib.resume_changes(stored.to_dict(), config)
        if not changes:
            return changes
    os.makedirs(workdir, exist_ok=True)
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    original = os.path.join(workdir, ORIGINAL_CONFIG_FILE)
    if not os.path.exists(original):
        files.write_atomic(original, open(path).read() if os.path.isfile(path) else text)
    if changes:
        line = json.dumps(
            {
                "time": datetime.datetime.now().isoformat(timespec="seconds"),
                "changes": {k: list(v) for k, v in changes.items()},
            },
            default=str,
        )
        with open(os.path.join(workdir, CHANGES_FILE), "a") as f:
            f.write(line + "\n")
    files.write_atomic(path, text)
    return changes


def has_checkpoints(workdir: str) -> bool:
    """Whether a run directory holds at least one complete checkpoint (a step folder)."""
    folder = os.path.join(workdir, CHECKPOINT_DIR)
    return os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder))


def generator_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The `ResnetGenerator` fields of a training config (what params files record)."""
    m = config.model
    return {
        "ngf": m.ngf,
        "n_blocks": m.n_blocks,
        "dropout_rate": m.dropout_rate,
        "learn_residual": m.learn_residual,
        "out_channels": 3,
    }


# --------------------------------------------------------------------------------------------
# Checkpoints.


def checkpoint_manager(workdir: str, max_to_keep: int = 3):
    """Orbax manager keeping the latest `max_to_keep` checkpoints plus the best by eval PSNR."""
    import orbax.checkpoint as ocp

    policy = ocp.checkpoint_managers.AnyPreservationPolicy(
        [
            ocp.checkpoint_managers.LatestN(n=int(max_to_keep)),
            ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda m: m["eval_psnr"], n=1, keep_checkpoints_without_metrics=False
            ),
        ]
    )
    # best_fn is what makes Orbax store a checkpoint's metrics (read back by `best_step`).
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        create=True,
        best_fn=lambda m: m["eval_psnr"],
        best_mode="max",
        enable_async_checkpointing=True,
    )
    # Orbax needs an absolute path (a relative one fails later, in its async thread).
    return ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)), options=options
    )


def local_int(x: Any) -> int:
    """A replicated scalar as an int, read from this process's own copy."""
    if isinstance(x, jax.Array):
        x = x.addressable_shards[0].data
    return int(np.asarray(x).reshape(-1)[0])


def save_checkpoint(manager, state: Any, metrics: Mapping[str, float] | None = None) -> None:
    """Saves one copy of a flax-struct `state` with a `step` field (single-device, or global
    arrays replicated over a mesh: every process calls this, Orbax writes each array once)."""
    import orbax.checkpoint as ocp

    manager.save(
        local_int(state.step),
        args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
        metrics=metrics,
    )


def restore_checkpoint(manager, template: Any, step: int | None = None) -> Any:
    """Restores `step` (default: the latest complete checkpoint) into the shapes of `template`."""
    import orbax.checkpoint as ocp

    step = manager.latest_step() if step is None else step
    target = jax.tree_util.tree_map(
        ocp.utils.to_shape_dtype_struct, flax.serialization.to_state_dict(template)
    )
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
    return flax.serialization.from_state_dict(template, restored)


def best_step(manager) -> int | None:
    """The step of the checkpoint with the highest eval PSNR, if any was evaluated."""
    best, best_psnr = None, -math.inf
    for step in manager.all_steps():
        metrics = manager.metrics(step)
        if metrics and metrics.get("eval_psnr", -math.inf) > best_psnr:
            best, best_psnr = step, metrics["eval_psnr"]
    return best


def load_generator_from_workdir(
    workdir: str, which: str = "latest", weights: str = "auto"
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Generator params of a training run's 'latest' or 'best' (eval PSNR) checkpoint.

    `weights`: 'ema' (the EMA of the generator's weights, kept when config.ema_decay > 0),
    'raw' (the trained weights) or 'auto' (EMA when the run keeps it). Only that part of the
    checkpoint is restored. Returns `(params, model_config, provenance)`.
    """
    import orbax.checkpoint as ocp

    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if not os.path.isdir(workdir):
        raise RunError(f"training directory not found: {workdir}")
    config = read_run_config(workdir)
    has_ema = float(config.get("ema_decay", 0.0) or 0.0) > 0
    if weights == "ema" and not has_ema:
        raise RunError(
            f"{workdir} keeps no EMA weights (its config.ema_decay is 0); "
            f"load its raw weights (--weights raw, or weights='raw' in Python)"
        )
    key = "ema_params" if (weights == "ema" or (weights == "auto" and has_ema)) else "g_params"
    model_config = generator_config(config)
    manager = checkpoint_manager(workdir, config.get("max_to_keep", 3))
    try:
        step = manager.latest_step() if which == "latest" else best_step(manager)
        if step is None:
            raise RunError(
                f"no {'evaluated ' if which == 'best' else ''}checkpoint in "
                f"{os.path.join(workdir, CHECKPOINT_DIR)}"
                + (" (the best one needs config.eval_every > 0)" if which == "best" else "")
            )
        generator = models.build_generator(model_config, conv_impl="xla")
        shapes = jax.eval_shape(
            lambda: generator.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))[
                "params"
            ]
        )
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = {key: flax.serialization.to_state_dict(shapes)}
        restore_args = jax.tree_util.tree_map(
            lambda s: ocp.ArrayRestoreArgs(sharding=sharding, dtype=s.dtype), target
        )
        try:
            restored = manager.restore(
                step,
                args=ocp.args.PyTreeRestore(
                    target, restore_args=restore_args, partial_restore=True
                ),
            )
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise RunError(
                f"checkpoint {step} of {workdir} does not fit its config.json "
                f"({type(e).__name__}: {str(e)[:300]})"
            ) from None
    finally:
        manager.close()
    provenance = {
        "workdir": os.path.abspath(workdir),
        "which": which,
        "step": int(step),
        "weights": "ema" if key == "ema_params" else "raw",
    }
    return restored[key], model_config, provenance


# --------------------------------------------------------------------------------------------
# The generator params file.


def model_config_path(path: str) -> str:
    return os.path.splitext(path.rstrip("/"))[0] + ".json"


def full_generator_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults completed by the `GENERATOR_FIELDS` of `model_config` (others dropped)."""
    return {
        **models.DEFAULT_GENERATOR_CONFIG,
        **{k: model_config[k] for k in models.GENERATOR_FIELDS if k in model_config},
    }


def save_generator(
    params: Mapping[str, Any],
    model_config: Mapping[str, Any],
    path: str,
    overwrite: bool = False,
    dtype: str = "float32",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Writes generator params (msgpack, stored as `dtype`: 'float32' or 'float16') and their
    model config (JSON beside them, with `provenance` under the key 'provenance' if given)."""
    unknown = set(model_config) - set(models.GENERATOR_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown generator config fields {sorted(unknown)}; "
            f"expected some of {models.GENERATOR_FIELDS}"
        )
    if dtype not in PARAMS_DTYPES:
        raise ValueError(f"dtype must be one of {PARAMS_DTYPES}, got {dtype!r}")
    for target in (path, model_config_path(path)):
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(
                f"{target} exists; pass overwrite=True (--overwrite) to replace it"
            )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stored = jax.tree_util.tree_map(lambda a: a.astype(dtype), to_numpy(params))
    card: dict[str, Any] = full_generator_config(model_config)
    if provenance:
        card[PROVENANCE_KEY] = dict(provenance)
    files.write_atomic(path, serialization.msgpack_serialize(stored))
    files.write_atomic(model_config_path(path), to_json(card))


def _check_field_types(config: Mapping[str, Any], path: str) -> None:
    kinds = {
        "ngf": int,
        "n_blocks": int,
        "out_channels": int,
        "dropout_rate": (int, float),
        "learn_residual": bool,
    }
    for key, kind in kinds.items():
        value = config.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParamsFileError(
                f"{path}: field {key!r} must be "
                f"{getattr(kind, '__name__', 'a number')}, got {value!r}"
            )


def _as_float32(params: Any) -> Any:
    """Floating arrays as float32 (a float16 file is computed in float32)."""

    def cast(a):
        a = np.asarray(a)
        return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a

    return jax.tree_util.tree_map(cast, params)


def read_provenance(path: str) -> dict[str, Any]:
    """The `provenance` object of a params file's JSON ({} when it has none)."""
    try:
        with open(model_config_path(path)) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return {}
    value = stored.get(PROVENANCE_KEY) if isinstance(stored, dict) else None
    return dict(value) if isinstance(value, dict) else {}


def pretrained_path() -> str:
    """The shipped pretrained generator's params file."""
    return os.path.join(PRETRAINED_DIR, PRETRAINED_NAME + ".msgpack")


def load_pretrained() -> tuple[dict, dict, dict]:
    """`(params, model_config, provenance)` of the pretrained generator that ships with the
    package (trained on real and synthetic camera shake; MODEL_CARD.md). Nothing is downloaded:
    a ParamsFileError says so if the package was installed without its data."""
    path = pretrained_path()
    if not os.path.isfile(path):
        raise ParamsFileError(
            f"the pretrained model is missing from this installation "
            f"({path}); reinstall the package, or pass --params / --workdir"
        )
    params, model_config = load_generator(path)
    provenance = {"pretrained": PRETRAINED_NAME, **read_provenance(path)}
    return params, model_config, provenance


def load_generator(path: str) -> tuple[dict, dict]:
    """Reads `(params, model_config)` written by `save_generator` (params as float32); clear
    errors on bad files."""
    if not os.path.isfile(path):
        raise ParamsFileError(f"params file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        params = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several types for truncated/corrupt data.
        raise ParamsFileError(
            f"{path} is not a readable params file (truncated or corrupt?): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(params, dict) or "stem" not in params:
        found = sorted(params)[:8] if isinstance(params, dict) else type(params).__name__
        raise ParamsFileError(
            f"{path} does not hold ResnetGenerator params (top-level keys: {found})"
        )
    config = dict(models.DEFAULT_GENERATOR_CONFIG)
    cpath = model_config_path(path)
    if os.path.isfile(cpath):
        try:
            with open(cpath) as f:
                stored = json.load(f)
        except (OSError, ValueError) as e:
            raise ParamsFileError(f"{cpath}: invalid JSON: {e}") from None
        if not isinstance(stored, dict):
            raise ParamsFileError(f"{cpath}: expected a JSON object of generator fields")
        config.update(stored)
        config = full_generator_config(config)
        _check_field_types(config, cpath)
    else:
        # Infer what the weights themselves say; the rest keeps the paper's defaults.
        try:
            config["ngf"] = int(params["stem"]["conv"]["kernel"].shape[-1])
        except (KeyError, TypeError, AttributeError):
            raise ParamsFileError(
                f"{path} does not hold ResnetGenerator params (no stem/conv/kernel)"
            ) from None
        config["n_blocks"] = sum(1 for k in params if k.startswith("block_"))
    check_params_shapes(params, config, path)
    return _as_float32(params), config


def check_params_shapes(
    params: Mapping[str, Any], model_config: Mapping[str, Any], path: str = "params"
) -> None:
    """Raises ParamsFileError naming the arrays that do not fit the model config."""
    generator = models.build_generator(model_config, conv_impl="xla")
    try:
        expected = jax.eval_shape(
            lambda: generator.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
        )
    except Exception as e:  # an impossible config, e.g. ngf 0
        raise ParamsFileError(
            f"{path}: the generator config {dict(model_config)} cannot be built: {e}"
        ) from None
    want = _flat_shapes(expected["params"])
    have = _flat_shapes(params)
    problems = [f"{k}: missing" for k in sorted(set(want) - set(have))]
    problems += [f"{k}: unexpected" for k in sorted(set(have) - set(want))]
    problems += [
        f"{k}: shape {have[k]}, expected {want[k]}"
        for k in sorted(set(want) & set(have))
        if have[k] != want[k]
    ]
    if problems:
        raise ParamsFileError(
            f"{path} does not match the generator config {dict(model_config)}: "
            + "; ".join(problems[:6])
            + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
        )


def _flat_shapes(tree: Any, prefix: str = "") -> dict[str, tuple[int, ...]]:
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out.update(_flat_shapes(v, f"{prefix}{k}/"))
        return out
    return {prefix.rstrip("/"): tuple(np.shape(tree))}


def to_numpy(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)

"""Generator-only parameter files: the params as Flax msgpack, the model config beside them.

`save_generator(params, model_config, path)` writes `path` (msgpack of the params pytree) and
`<path without extension>.json` (the `ResnetGenerator` fields), so a file can be loaded without
the training code or its optimiser state: `params, model_config = load_generator(path)`.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

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
        raise ParamsFileError(f"{path} does not hold ResnetGenerator params "
                              f"(top-level keys: {sorted(params)[:8] if isinstance(params, dict) else type(params).__name__})")
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
    return params, config


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)

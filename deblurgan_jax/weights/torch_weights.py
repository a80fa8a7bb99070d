"""Importers: official DeblurGAN PyTorch checkpoints and ImageNet VGG19 weights -> Flax params.

Layouts (see the module docstrings of `models.py`):
- PyTorch conv weights are (out, in, kh, kw); Flax kernels are (kh, kw, in, out).
- PyTorch ConvTranspose2d weights are (in, out, kh, kw); with `transpose_kernel=True` Flax wants
  the kernel of the forward convolution it transposes, (kh, kw, out, in): a permutation, the
  spatial flip is done by `lax.conv_transpose` itself.
- Biases of convolutions followed by a non-affine InstanceNorm are dropped: the norm subtracts
  the per-channel mean, so they never change the output.

The command line over these importers is `python -m deblurgan_jax.convert` (convert.py).
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import numpy as np

from deblurgan_jax.networks import models
from deblurgan_jax.utils import files

# Official 2018 generator: 11,378,179 values; 2019 refactor (one conv per block): 6,067,459.
OFFICIAL_GENERATOR_PARAMS = 11_378_179


class CheckpointError(ValueError):
    """A checkpoint does not have the layout an importer expects; the message says why."""


# --------------------------------------------------------------------------------------------
# Reading PyTorch files.


def load_torch_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a PyTorch state_dict (`torch.load(weights_only=True)`) as NumPy arrays.

    Accepts a bare state_dict or one wrapped under 'state_dict'/'model', and strips the
    'module.' prefix that `nn.DataParallel` adds.
    """
    try:
        import torch
    except ImportError:
        raise SystemExit(
            "Reading .pth files needs PyTorch, which deblurgan-jax does not "
            "require: pip install torch (the CPU build is enough)."
        ) from None
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: not a loadable PyTorch weights file ({type(e).__name__}: {e})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state_dict, found {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            out[k.removeprefix("module.")] = v.detach().cpu().numpy()
    return out


def _conv(w: np.ndarray) -> np.ndarray:
    """PyTorch Conv2d weight (out, in, kh, kw) -> Flax kernel (kh, kw, in, out)."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), dtype=np.float32)


def _conv_transpose(w: np.ndarray) -> np.ndarray:
    """PyTorch ConvTranspose2d weight (in, out, kh, kw) -> Flax ConvTranspose kernel with
    `transpose_kernel=True`, (kh, kw, out, in)."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), dtype=np.float32)


def _check_keys(
    sd: Mapping[str, np.ndarray], expected: list[str], what: str, ignorable: tuple[str, ...] = ()
) -> None:
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected and not k.endswith(ignorable)]
    if missing or unexpected:
        lines = [f"{what}: the state_dict does not match the 2018 DeblurGAN layout."]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        raise CheckpointError("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Generator.


def _block_indices(sd: Mapping[str, np.ndarray]) -> list[int]:
    return sorted(
        {int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    )


def generator_params_from_state_dict(sd: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """Maps an official 2018 DeblurGAN generator state_dict onto `ResnetGenerator` params.

    Returns `(params, model_config)`. Raises `CheckpointError` naming missing or unexpected keys,
    and refuses checkpoints of the 2019 code (one convolution per ResBlock).
    """
    blocks = _block_indices(sd)
    if not blocks:
        raise CheckpointError(
            "not a DeblurGAN ResnetGenerator state_dict: no 'model.N.conv_block.*' keys "
            f"(first keys: {', '.join(list(sd)[:6])})"
        )
    if all(f"model.{i}.conv_block.6.weight" not in sd for i in blocks) and any(
        f"model.{i}.conv_block.1.weight" in sd for i in blocks
    ):
        total = int(sum(v.size for k, v in sd.items() if k.endswith(("weight", "bias"))))
        raise CheckpointError(
            "this checkpoint comes from the 2019 refactor of the DeblurGAN code: its ResBlocks "
            "have ONE convolution each (an operator-precedence slip in `ResnetBlock`) and "
            f"InstanceNorm with running statistics ({total:,} parameters; the paper's 2018 "
            f"generator has {OFFICIAL_GENERATOR_PARAMS:,}). deblurgan-jax implements the "
            "paper's two-convolution blocks, so these weights cannot be loaded; use weights "
            "trained with the 2018 code (keys 'model.N.conv_block.1' and '.conv_block.6')."
        )
    n = len(blocks)
    first_block = blocks[0]
    if blocks != list(range(first_block, first_block + n)) or first_block != 10:
        raise CheckpointError(
            f"unexpected ResBlock indices {blocks}; the 2018 layout has "
            f"them at model.10 ... model.{9 + n}"
        )
    up1, up2, head = 10 + n, 13 + n, 17 + n
    names = {"stem": 1, "down_1": 4, "down_2": 7, "up_1": up1, "up_2": up2, "head": head}
    expected = []
    for name, idx in names.items():
        expected += [f"model.{idx}.weight", f"model.{idx}.bias"]
    for b in blocks:
        for c in (1, 6):
            expected += [f"model.{b}.conv_block.{c}.weight", f"model.{b}.conv_block.{c}.bias"]
    _check_keys(sd, expected, "generator")

    w = lambda k: np.asarray(sd[k], np.float32)  # noqa: E731
    params = {
        # Biases before InstanceNorm (every conv but the head) are dropped: dead weights.
        "stem": {"conv": {"kernel": _conv(w("model.1.weight"))}},
        "down_1": {"kernel": _conv(w("model.4.weight"))},
        "down_2": {"kernel": _conv(w("model.7.weight"))},
        "up_1": {"kernel": _conv_transpose(w(f"model.{up1}.weight"))},
        "up_2": {"kernel": _conv_transpose(w(f"model.{up2}.weight"))},
        "head": {
            "conv": {"kernel": _conv(w(f"model.{head}.weight")), "bias": w(f"model.{head}.bias")}
        },
    }
    for i, b in enumerate(blocks):
        params[f"block_{i}"] = {
            "conv_0": {"conv": {"kernel": _conv(w(f"model.{b}.conv_block.1.weight"))}},
            "conv_1": {"conv": {"kernel": _conv(w(f"model.{b}.conv_block.6.weight"))}},
        }
    ngf = int(sd["model.1.weight"].shape[0])
    out_channels = int(sd[f"model.{head}.weight"].shape[0])
    return params, {
        "ngf": ngf,
        "n_blocks": n,
        "out_channels": out_channels,
        "learn_residual": True,
        "dropout_rate": 0.5,
    }


# --------------------------------------------------------------------------------------------
# Critic.


def critic_params_from_state_dict(sd: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """Maps the original `NLayerDiscriminator` state_dict (model.0, 2, 5, 8, ...) onto
    `PatchCritic` params; returns `(params, critic_config)`."""
    conv_idx = sorted({int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.weight$", k))})
    if len(conv_idx) < 3 or conv_idx[:2] != [0, 2]:
        raise CheckpointError(
            "not a DeblurGAN NLayerDiscriminator state_dict: expected conv "
            f"weights at model.0, model.2, ...; found {conv_idx}"
        )
    expected = [f"model.{i}.{p}" for i in conv_idx for p in ("weight", "bias")]
    # InstanceNorm with running statistics (later code) adds buffers; they carry no weights.
    _check_keys(
        sd, expected, "critic", ignorable=("running_mean", "running_var", "num_batches_tracked")
    )
    n_layers = len(conv_idx) - 2
    params = {}
    for j, i in enumerate(conv_idx):
        entry = {"kernel": _conv(np.asarray(sd[f"model.{i}.weight"], np.float32))}
        if j == 0 or j == len(conv_idx) - 1:  # the only convs not followed by InstanceNorm
            entry["bias"] = np.asarray(sd[f"model.{i}.bias"], np.float32)
        params[f"conv_{j}"] = entry
    ndf = int(sd["model.0.weight"].shape[0])
    return params, {"ndf": ndf, "n_layers": n_layers}


# --------------------------------------------------------------------------------------------
# VGG19.

# torchvision `vgg19().features` indices of the convolutions up to conv3_3.
TORCHVISION_VGG_INDICES = dict(zip(models.VGG_CONV_LAYERS, (0, 2, 5, 7, 10, 12, 14)))
KERAS_VGG_NAMES = {n: f"block{n[4]}_conv{n[6]}" for n in models.VGG_CONV_LAYERS}


def vgg_params_from_torchvision(sd: Mapping[str, np.ndarray]) -> dict:
    """torchvision VGG16/VGG19 state_dict (`features.{0,2,5,7,10,12,14}`) -> VGGFeatures params
    up to conv3_3. The rest of the network is ignored."""
    expected = [
        f"features.{i}.{p}" for i in TORCHVISION_VGG_INDICES.values() for p in ("weight", "bias")
    ]
    missing = [k for k in expected if k not in sd]
    if missing:
        raise CheckpointError("not a torchvision VGG state_dict: missing " + ", ".join(missing))
    params = {}
    for name, i in TORCHVISION_VGG_INDICES.items():
        wt = np.asarray(sd[f"features.{i}.weight"], np.float32)
        if wt.shape[0] != models.VGG_CHANNELS[name]:
            raise CheckpointError(
                f"features.{i}.weight has shape {wt.shape}; {name} of VGG "
                f"has {models.VGG_CHANNELS[name]} output channels"
            )
        params[name] = {
            "kernel": _conv(wt),
            "bias": np.asarray(sd[f"features.{i}.bias"], np.float32),
        }
    return params


def vgg_params_from_keras_h5(path: str) -> dict:
    """Keras VGG19 weights `.h5` (layers block1_conv1 ... block3_conv3, legacy HDF5 layout, as
    in `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`) -> VGGFeatures params. Keras
    kernels are already (kh, kw, in, out); the weights expect Caffe-style input (BGR, 0-255,
    mean-subtracted), which the caller records as `preprocess='caffe'`."""
    try:
        import h5py
    except ImportError:
        raise SystemExit("Reading Keras .h5 files needs h5py: pip install h5py") from None
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file not found: {path}")
    params = {}
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"{path}: not an HDF5 file ({e})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        missing = [k for k in KERAS_VGG_NAMES.values() if k not in root]
        if missing:
            raise CheckpointError(
                f"{path}: not a Keras VGG weights file: missing layers "
                f"{', '.join(missing)} (found {', '.join(list(root)[:8])})"
            )
        for name, layer in KERAS_VGG_NAMES.items():
            arrays: dict[str, np.ndarray] = {}
            root[layer].visititems(
                lambda k, v: (
                    arrays.__setitem__(k.split("/")[-1].split(":")[0], v[()])
                    if isinstance(v, h5py.Dataset)
                    else None
                )
            )
            if "kernel" not in arrays or "bias" not in arrays:
                raise CheckpointError(
                    f"{path}: layer {layer} has no kernel/bias datasets (found {sorted(arrays)})"
                )
            params[name] = {
                "kernel": np.asarray(arrays["kernel"], np.float32),
                "bias": np.asarray(arrays["bias"], np.float32),
            }
            want = models.VGG_CHANNELS[name]
            if params[name]["kernel"].shape[-1] != want:
                raise CheckpointError(
                    f"{path}: {layer}/kernel has shape "
                    f"{params[name]['kernel'].shape}, expected {want} outputs"
                )
    return params


def write_vgg_npz(
    params: Mapping[str, Mapping[str, np.ndarray]], path: str, preprocess: str
) -> None:
    """Writes VGGFeatures params (up to conv3_3) and their input convention, read back by
    `models.read_vgg_npz` / `models.load_vgg_params('vgg19')`."""
    arrays = {
        f"{n}/{p}": np.asarray(params[n][p], np.float32)
        for n in models.VGG_CONV_LAYERS
        for p in ("kernel", "bias")
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a name
            np.savez(f, preprocess=np.array(preprocess), **arrays)

    files.write_with(path, write)

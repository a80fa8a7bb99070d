"""The convert command: official DeblurGAN PyTorch weights and ImageNet VGG19 weights ->
deblurgan-jax parameter files (the importers are in `torch_weights.py`).

    python -m deblurgan_jax.convert generator --pth latest_net_G.pth --out generator.msgpack
    python -m deblurgan_jax.convert critic    --pth latest_net_D.pth --out critic.msgpack
    python -m deblurgan_jax.convert vgg19     (--torchvision vgg19-dcbb9e9d.pth
                                               | --keras vgg19_..._notop.h5) [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from deblurgan_jax.weights import checkpoints, torch_weights
from deblurgan_jax.commands import cli
from deblurgan_jax.networks import models


# --------------------------------------------------------------------------------------------
# Command line.


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.convert",
        description="Convert official DeblurGAN PyTorch weights and ImageNet VGG19 weights to "
        "deblurgan-jax parameter files. Nothing is downloaded: bring the files.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser(
        "generator",
        help="official DeblurGAN generator .pth (2018 code) -> "
        "generator params (.msgpack + .json model config)",
    )
    g.add_argument("--pth", required=True, help="e.g. latest_net_G.pth")
    g.add_argument("--out", required=True, help="output .msgpack path")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output")
    c = sub.add_parser("critic", help="original NLayerDiscriminator .pth -> critic params")
    c.add_argument("--pth", required=True, help="e.g. latest_net_D.pth")
    c.add_argument("--out", required=True, help="output .msgpack path")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output")
    v = sub.add_parser(
        "vgg19",
        help="ImageNet VGG19 weights -> the perceptual-loss weights file (layers up to conv3_3)",
    )
    src = v.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--torchvision", metavar="PTH", help="torchvision state_dict, e.g. vgg19-dcbb9e9d.pth"
    )
    src.add_argument(
        "--keras",
        metavar="H5",
        help="Keras weights, e.g. vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    )
    v.add_argument(
        "--out",
        default=None,
        help=f"output .npz (default: ${models.VGG19_PATH_ENV} or "
        f"{models.DEFAULT_VGG19_PATH}, where training looks for it)",
    )
    v.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return p


def _refuse_existing(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise cli.UsageError(f"{path} exists; pass --overwrite to replace it")


def run(args: argparse.Namespace) -> int:
    if True:
        if args.command == "generator":
            _refuse_existing(args.out, args.overwrite)
            params, config = torch_weights.generator_params_from_state_dict(
                torch_weights.load_torch_state_dict(args.pth)
            )
            checkpoints.save_generator(params, config, args.out, overwrite=args.overwrite)
            print(
                f"wrote {args.out} and {checkpoints.model_config_path(args.out)} "
                f"({models.count_params(params):,} parameters, {config})"
            )
        elif args.command == "critic":
            _refuse_existing(args.out, args.overwrite)
            from flax import serialization

            params, config = torch_weights.critic_params_from_state_dict(
                torch_weights.load_torch_state_dict(args.pth)
            )
            with open(args.out, "wb") as f:
                f.write(serialization.msgpack_serialize(params))
            print(f"wrote {args.out} ({models.count_params(params):,} parameters, {config})")
        else:
            out = os.path.expanduser(args.out) if args.out else models.default_vgg19_path()
            _refuse_existing(out, args.overwrite)
            if args.torchvision:
                params = torch_weights.vgg_params_from_torchvision(
                    torch_weights.load_torch_state_dict(args.torchvision)
                )
                preprocess = "torch"
            else:
                params = torch_weights.vgg_params_from_keras_h5(args.keras)
                preprocess = "caffe"
            torch_weights.write_vgg_npz(params, out, preprocess)
            print(f"wrote {out} (VGG19 up to conv3_3, input convention '{preprocess}')")
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

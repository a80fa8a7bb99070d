"""The export command: a generator params file, a TF SavedModel or an ONNX model.

    python -m deblurgan_jax.export [--workdir DIR [--which latest|best] [--weights ema|raw]
        | --params FILE] --out PATH [--format params|saved_model|onnx] [--dtype float16]

Without --workdir or --params the pretrained model shipped with the package is exported.

- params (default): `checkpoints.save_generator` writes PATH (msgpack of the params pytree) and
  `<PATH without extension>.json` (the `ResnetGenerator` fields), loadable without the training
  code: `params, model_config = checkpoints.load_generator(path)`, or
  `deblurgan_jax.Deblurrer.from_params(path)`. `--dtype float16` halves the file (loading
  computes in float32 again; restored images then differ by rounding).
- saved_model, onnx: see `serving.py` (uint8 images of any size in and out).
An export never replaces its own input, nor an existing file without --overwrite.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from deblurgan_jax.weights import checkpoints
from deblurgan_jax.commands import cli

FORMATS = ("params", "saved_model", "onnx")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_generator_flags(p)
    p.add_argument(
        "--out",
        required=True,
        help="output: a file (params: .msgpack; onnx: .onnx) or a folder "
        "(saved_model); the model config is written beside it as .json",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="params",
        help="params (default), saved_model (TF, uint8 in/out) or onnx",
    )
    p.add_argument(
        "--platforms",
        default="cpu,cuda",
        help="saved_model: comma-separated platforms to lower for (cpu, cuda, rocm, "
        "tpu); default cpu,cuda",
    )
    p.add_argument("--opset", type=int, default=17, help="onnx: ONNX opset (default 17)")
    p.add_argument(
        "--dtype",
        choices=checkpoints.PARAMS_DTYPES,
        default="float32",
        help="params: storage precision of the weights (default float32; float16 halves the file)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    return p


def run(args: argparse.Namespace) -> int:
    out = args.out.rstrip("/") or args.out
    blocking = cli.first_existing_file(os.path.dirname(os.path.abspath(out)))
    if blocking is not None:
        raise cli.UsageError(f"--out {args.out}: {blocking} is a file, not a folder")
    if args.dtype != "float32" and args.format != "params":
        raise cli.UsageError(f"--dtype {args.dtype} applies to --format params only")
    if args.params is not None:
        inputs = [args.params, checkpoints.model_config_path(args.params)]
        outputs = [out, checkpoints.model_config_path(out)]
        clash = [
            o
            for o in outputs
            if any(
                os.path.exists(i) and os.path.exists(o) and os.path.samefile(i, o) for i in inputs
            )
        ]
        clash += [o for o in outputs if os.path.isdir(out) and cli.is_within(args.params, out)]
        if clash:
            raise cli.UsageError(
                f"--out {args.out} would replace the input {args.params} (or "
                f"its .json); choose another --out"
            )
    if args.workdir is not None and cli.is_within(args.workdir, out):
        raise cli.UsageError(
            f"--out {args.out} would replace the training directory "
            f"{args.workdir} (or hold it); choose another --out"
        )
    params, model_config, provenance = cli.load_generator_source(args)
    from deblurgan_jax.weights import serving  # TensorFlow only for these formats

    if args.format == "params":
        checkpoints.save_generator(
            params,
            model_config,
            out,
            overwrite=args.overwrite,
            dtype=args.dtype,
            provenance=provenance,
        )
    elif args.format == "saved_model":
        platforms = [s.strip() for s in args.platforms.split(",") if s.strip()]
        serving.export_saved_model(params, model_config, out, platforms, args.overwrite)
    else:
        try:
            serving.export_onnx(params, model_config, out, args.opset, args.overwrite)
        except ImportError as e:
            raise cli.CommandError(str(e)) from None
    step = f" (step {provenance['step']})" if "step" in provenance else ""
    print(f"wrote {args.format} {out}{step} and {checkpoints.model_config_path(out)}")
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

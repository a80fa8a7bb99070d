"""What the commands share: exit codes, user-facing errors, quiet logs, generator flags.

Exit codes of every command (and of train.py):
  0    success;
  1    the run failed, or some inputs were skipped (listed on stderr);
  2    usage or configuration error (argparse's own code; nothing was written);
  130  interrupted by Ctrl-C (what could be saved safely was saved).
A known error prints one line, `error: ...`, naming the file or key at fault; never a traceback.
TensorFlow (used for tf.data only) and absl are kept quiet: importing this module sets their
environment before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from deblurgan_jax.utils import files

# Before TensorFlow is imported anywhere: no INFO lines, no oneDNN notice (TF only runs tf.data
# here, where oneDNN's kernels play no part), and TF never takes a GPU from JAX.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A user-facing failure: printed as 'error: ...' without a traceback, exit 1."""

    exit_code = EXIT_FAILED


class UsageError(CommandError):
    """Bad arguments or configuration: printed as 'error: ...', exit 2."""

    exit_code = EXIT_USAGE


# Library errors, by module: (usage errors -> 2, run failures -> 1).
_LIBRARY_ERRORS = {
    "deblurgan_jax.config": (("ConfigError",), ()),
    "deblurgan_jax.weights.checkpoints": (("UnusableWorkdir",), ("RunError",)),
    "deblurgan_jax.weights.torch_weights": ((), ("CheckpointError",)),
    "deblurgan_jax.data.sources": ((), ("DataError",)),
    "deblurgan_jax.utils.images": ((), ("PictureError",)),
    "deblurgan_jax.blurring.video": ((), ("VideoError",)),
    "deblurgan_jax.networks.models": ((), ("VGGWeightsMissing",)),
}


def _known_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors -> 2, run failures -> 1) raised by the library for bad input.

    Only modules already imported are looked at: an error class of a module that was never
    imported cannot have been raised, and importing, say, the data pipeline just to compare would load
    TensorFlow (seconds, hundreds of MB) into a command that never needed it."""
    # Refusing to replace an existing output is a usage error: the fix is a flag (--overwrite)
    # or another output.
    usage: list[type[BaseException]] = [FileExistsError]
    failures: list[type[BaseException]] = [
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        OSError,
        MemoryError,
    ]
    for name, (usage_names, failure_names) in _LIBRARY_ERRORS.items():
        module = sys.modules.get(name)
        if module is not None:
            usage += [getattr(module, n) for n in usage_names]
            failures += [getattr(module, n) for n in failure_names]
    return tuple(usage), tuple(failures)


class _DropOrbaxMetricNotice:
    """Orbax warns on every save without metrics once a best-checkpoint metric is tracked; a
    run saves such checkpoints on purpose (between evaluations)."""

    def filter(self, record) -> bool:
        return "Requested `tracked_metric`" not in record.getMessage()


def quiet_absl() -> None:
    """absl (Orbax, TFDS) logs every save and dataset step at INFO: keep warnings only."""
    import logging as std_logging

    from absl import logging

    logging.set_verbosity(logging.WARNING)
    absl_logger = std_logging.getLogger("absl")
    if not any(isinstance(f, _DropOrbaxMetricNotice) for f in absl_logger.filters):
        absl_logger.addFilter(_DropOrbaxMetricNotice())


def report_error(error: BaseException) -> int:
    """Prints a known error as one line and returns its exit code."""
    usage, _ = _known_errors()
    code = getattr(error, "exit_code", EXIT_USAGE if isinstance(error, usage) else EXIT_FAILED)
    message = str(error) or type(error).__name__
    if isinstance(error, MemoryError):
        message = "out of memory (try a smaller --tile, batch or image)"
    print(f"error: {message}", file=sys.stderr)
    return code


def report_skipped(messages: Sequence[str]) -> int:
    """Lists the inputs a command skipped on stderr; the exit code: 1 if any, else 0."""
    if not messages:
        return EXIT_OK
    print(f"{len(messages)} input(s) skipped:\n  " + "\n  ".join(messages), file=sys.stderr)
    return EXIT_FAILED


def run_command(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parses `argv` (argparse exits 2 on usage errors) and runs `run(args)`, turning known
    errors into one line and an exit code, and Ctrl-C into 130 whenever it comes."""
    try:
        args = parser.parse_args(argv)
        quiet_absl()
        code = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # unknown errors are re-raised
        usage, failures = _known_errors()
        if isinstance(e, (CommandError,) + usage + failures):
            return report_error(e)
        raise
    return EXIT_OK if code is None else int(code)


# --------------------------------------------------------------------------------------------
# Shared flags.


def add_generator_flags(p: argparse.ArgumentParser) -> None:
    """Where the generator comes from (evaluate, deblur, export, detection_benchmark)."""
    src = p.add_argument_group(
        "generator (one of; default: the pretrained model shipped with the package)"
    )
    src.add_argument("--workdir", help="training directory (train.py --workdir)")
    src.add_argument(
        "--which",
        choices=("latest", "best"),
        default="latest",
        help="checkpoint of --workdir: the latest, or the best by eval PSNR "
        "(needs config.eval_every > 0); default latest",
    )
    src.add_argument(
        "--weights",
        choices=("auto", "ema", "raw"),
        default="auto",
        help="generator weights of --workdir: the EMA of the weights (kept when "
        "config.ema_decay > 0), the raw trained ones, or auto: EMA when the "
        "run keeps it (default)",
    )
    src.add_argument(
        "--params",
        help="generator params file (python -m deblurgan_jax.export, "
        "or converted official weights)",
    )


def add_output_folder_flags(p: argparse.ArgumentParser) -> None:
    """--out (a folder the command creates) and --overwrite (evaluate, detection_benchmark)."""
    p.add_argument(
        "--out",
        required=True,
        help="output folder (created; refused if not empty unless --overwrite)",
    )
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")


def add_inference_flags(p: argparse.ArgumentParser, default_tile: int) -> None:
    """Tiling and test-time dropout (evaluate, deblur)."""
    p.add_argument(
        "--tile",
        type=int,
        default=default_tile,
        help=f"restore images with a side longer than N pixels in N x N tiles "
        f"(multiple of 4; default {default_tile}; 0: never tile). Results equal "
        f"the untiled ones.",
    )
    p.add_argument(
        "--tile-overlap",
        type=int,
        default=None,
        help="pixels shared by neighbouring tiles (default: twice the generator's "
        "receptive radius, 192 for 9 blocks)",
    )
    p.add_argument(
        "--dropout",
        action="store_true",
        help="test-time dropout (the paper's setting); default deterministic",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the test-time dropout")


def load_generator_source(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(params, model_config, provenance) from --workdir/--which/--weights or --params, or the
    shipped pretrained model when neither is given (said on stderr)."""
    from deblurgan_jax.weights import checkpoints

    workdir, params_path = getattr(args, "workdir", None), getattr(args, "params", None)
    if workdir is not None and params_path is not None:
        raise UsageError("give at most one of --workdir and --params")
    if workdir is None and params_path is None:
        params, model_config, provenance = checkpoints.load_pretrained()
        print(
            f"using the pretrained model {checkpoints.PRETRAINED_NAME} shipped with the "
            f"package (pass --params or --workdir for another)",
            file=sys.stderr,
        )
        return params, model_config, provenance
    if params_path is not None:
        params, config = checkpoints.load_generator(params_path)
        return params, config, {"params": os.path.abspath(params_path)}
    return checkpoints.load_generator_from_workdir(
        workdir, args.which, getattr(args, "weights", "auto")
    )


def check_tile_args(tile: int | None, overlap: int | None, n_blocks: int) -> None:
    """UsageError for a --tile / --tile-overlap pair that cannot tile."""
    from deblurgan_jax.networks import inference

    if not tile:
        return
    overlap = inference.default_tile_overlap(n_blocks) if overlap is None else overlap
    if tile < 0 or tile % 4 or overlap % 4 or overlap < 0:
        raise UsageError(
            f"--tile ({tile}) and --tile-overlap ({overlap}) must be non-negative multiples of 4"
        )
    if tile <= overlap:
        raise UsageError(
            f"--tile ({tile}) must be larger than the tile overlap ({overlap}; "
            f"the default is twice the generator's receptive radius)"
        )


def first_existing_file(path: str) -> str | None:
    """The path itself or its nearest parent, if that is a file (which no folder can be under)."""
    path = os.path.abspath(path)
    while True:
        if os.path.exists(path):
            return path if not os.path.isdir(path) else None
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def check_out_dir(out: str, flag: str = "--out") -> None:
    """UsageError for an output folder that is, or lies below, a file."""
    blocking = first_existing_file(out)
    if blocking is not None:
        raise UsageError(f"{flag} {out}: {blocking} is a file, not a folder")


def prepare_out_dir(out: str, overwrite: bool, flag: str = "--out") -> bool:
    """Creates an output folder; refuses a non-empty one without --overwrite, and a path that
    is, or lies below, a file. Returns whether it created the folder (so a command that ends
    up writing nothing can remove it again)."""
    check_out_dir(out, flag)
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise UsageError(f"{flag} {out} is not empty; pass --overwrite to write into it")
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    return created


def remove_if_empty(folder: str) -> None:
    """Removes a folder a command created and left empty (a failed run leaves no litter)."""
    try:
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
    except OSError:
        pass


# Whether `path` is `folder` or lies inside it (however spelled): see utils/files.py.
is_within = files.is_within

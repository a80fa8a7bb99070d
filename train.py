"""Trains DeblurGAN.

  python train.py --config configs/<name>.py --workdir DIR [--config.key=value ...]

Configs: configs/gopro_wild.py, synth.py, comb.py (the paper's three models), demo.py (CPU-sized,
on the photos bundled with scikit-image), tiny.py (tests). Any field can be overridden, e.g.
`--config.batch_size=8 --config.data.root=/data/GoPro_Large`; every field is described in
deblurgan_jax/config.py. Running the same command again resumes from the latest checkpoint in
DIR (fields that change the model are refused; others, e.g. num_steps, are recorded).
Ctrl-C stops after the current step with a checkpoint (exit 130); a second Ctrl-C stops at once.
Exit codes: 0 done, 1 the run failed (e.g. a diverged loss), 2 a config or usage error.
"""

import os
import signal
import sys


def _interrupted_during_start_up(signum, frame):
    """Ctrl-C before the training loop takes over (imports, config, data scan, restore): nothing
    is half-written then (config.json is written atomically, checkpoints are only read), so stop
    at once, in one line, instead of a KeyboardInterrupt traceback or a wait on threads."""
    del signum, frame
    sys.stderr.write(
        "\ninterrupted before the first step; nothing new to save (run the same "
        "command to start or resume)\n"
    )
    sys.stderr.flush()
    os._exit(130)  # cli.EXIT_INTERRUPTED (cli may not be imported yet)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _interrupted_during_start_up)

# First of the project's modules: keeps TensorFlow quiet before anything imports it.
from deblurgan_jax.commands import cli  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py).", lock_config=True
)
flags.DEFINE_string(
    "workdir",
    None,
    "Directory for checkpoints, TensorBoard logs and images; an existing one is resumed.",
)
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = FLAGS.config  # a config file that failed to load raises on first use
        config.keys()
    except Exception as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[-2:]) if first else type(e).__name__
        print(f"error: --config {FLAGS['config'].config_filename}: {detail}", file=sys.stderr)
        return cli.EXIT_USAGE
    # A bad value is refused before the training modules load TensorFlow: the same check
    # train_and_evaluate makes, answered in about a second instead of after the imports.
    from deblurgan_jax import config as config_lib

    try:
        config_lib.validate(config)
    except config_lib.ConfigError as e:
        return cli.report_error(e)
    from deblurgan_jax.training import train as train_lib

    cli.quiet_absl()
    try:
        train_lib.train_and_evaluate(config, FLAGS.workdir, progress=FLAGS.progress)
    except train_lib.NonFiniteLossError as e:
        print(
            f"error: {e}\nTraining stopped; the last good checkpoint in {FLAGS.workdir} is "
            f"kept. Lower config.learning_rate or check the data.",
            file=sys.stderr,
        )
        return cli.EXIT_FAILED
    except train_lib.Interrupted as e:
        print(str(e), file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing to save", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    except Exception as e:  # known errors -> one line; others keep their traceback
        usage, failures = cli._known_errors()
        if isinstance(e, usage + failures + (cli.CommandError,)):
            return cli.report_error(e)
        raise
    return cli.EXIT_OK


def parse_flags(argv):
    """absl's parser, with a config file or override that fails (unknown key, wrong type,
    missing file) reported as one line and exit 2 instead of chained tracebacks."""
    try:
        return FLAGS(argv)
    except Exception as e:  # absl and ml_collections raise several types
        message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        if isinstance(e, (AttributeError, KeyError)):
            bad = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
            message = (
                f"unknown config field {message.strip(chr(34) + chr(39))} (in {' '.join(bad)})"
            )
        print(
            f"error: {message}\nSee python train.py --helpfull; config fields are described "
            f"in deblurgan_jax/config.py.",
            file=sys.stderr,
        )
        sys.exit(cli.EXIT_USAGE)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)

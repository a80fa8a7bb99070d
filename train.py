"""Trains DeblurGAN.

  python train.py --config configs/<name>.py --workdir DIR [--config.key=value ...]

Configs: configs/gopro_wild.py, synth.py, comb.py (the paper's three models), demo.py (CPU-sized,
on the photos bundled with scikit-image), tiny.py (tests). Any field can be overridden, e.g.
`--config.batch_size=8 --config.data.root=/data/GoPro_Large`. Running the same command again
resumes from the latest checkpoint in DIR.
"""
import os
import sys

# TensorFlow (tf.data only) must not take the GPU from JAX, and should be quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and images; "
                    "an existing one is resumed.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from deblurgan_jax import data, models
    from deblurgan_jax import train as train_lib

    # Orbax and TF log every save at INFO; the progress bar and summaries say what matters.
    logging.set_verbosity(logging.WARNING)
    try:
        train_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir, progress=FLAGS.progress)
    except train_lib.NonFiniteLossError as e:
        print(f"error: {e}\nTraining stopped; the last good checkpoint in {FLAGS.workdir} is "
              f"kept. Lower config.learning_rate or check the data.", file=sys.stderr)
        return 1
    except (data.DataError, models.VGGWeightsMissing, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run(argv):
    code = main(argv)
    # Checkpoints, TensorBoard files and logs are complete here. Skip the interpreter's
    # teardown: destroying the tf.data iterator waits for the input pipeline's worker threads to
    # finish their in-flight work, which kept finished runs alive for up to two minutes.
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    app.run(run)

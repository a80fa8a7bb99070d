"""`python -m deblurgan_jax.detection_benchmark` and the `deblurgan-detection-benchmark` script run
deblurgan_jax/commands/detection_benchmark.py; this module only keeps the short entry point."""

import sys

from deblurgan_jax.commands.detection_benchmark import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m deblurgan_jax.evaluate` and the `deblurgan-evaluate` script run
deblurgan_jax/commands/evaluate.py; this module only keeps the short entry point."""

import sys

from deblurgan_jax.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())

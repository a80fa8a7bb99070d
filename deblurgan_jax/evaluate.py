"""`python -m deblurgan_jax.evaluate` and the `deblurgan-evaluate` script: the command itself is
deblurgan_jax/commands/evaluate.py (this module only keeps the short, documented entry point)."""
import sys

from deblurgan_jax.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m deblurgan_jax.deblur` and the `deblurgan-deblur` script: the command itself is
deblurgan_jax/commands/deblur.py (this module only keeps the short, documented entry point)."""
import sys

from deblurgan_jax.commands.deblur import main

if __name__ == "__main__":
    sys.exit(main())

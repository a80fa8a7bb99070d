"""`python -m deblurgan_jax.convert` and the `deblurgan-convert` script run
deblurgan_jax/commands/convert.py; this module only keeps the short entry point."""

import sys

from deblurgan_jax.commands.convert import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m deblurgan_jax.blur` and the `deblurgan-blur` script run
deblurgan_jax/commands/blur.py; this module only keeps the short entry point."""

import sys

from deblurgan_jax.commands.blur import main

if __name__ == "__main__":
    sys.exit(main())

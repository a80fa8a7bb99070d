"""`python -m deblurgan_jax.deblur` and the `deblurgan-deblur` script run
deblurgan_jax/commands/deblur.py; this module only keeps the short entry point."""

import sys

from deblurgan_jax.commands.deblur import main

if __name__ == "__main__":
    sys.exit(main())

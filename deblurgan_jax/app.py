"""`python -m deblurgan_jax.app` and the `deblurgan-app` script run deblurgan_jax/commands/app.py;
this module only keeps the short entry point."""

import sys

from deblurgan_jax.commands.app import main

if __name__ == "__main__":
    sys.exit(main())

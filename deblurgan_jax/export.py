"""`python -m deblurgan_jax.export` and the `deblurgan-export` script run
deblurgan_jax/commands/export.py; this module only keeps the short entry point."""

import sys

from deblurgan_jax.commands.export import main

if __name__ == "__main__":
    sys.exit(main())

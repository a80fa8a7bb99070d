"""The command-line programs (top layer): evaluate, deblur, export, convert, blur,
detection_benchmark, and `cli`, what they share (exit codes, one-line errors, common flags).

Each is run as `python -m deblurgan_jax.<command>` (thin modules in deblurgan_jax/ forward to
the ones here) or as the `deblurgan-<command>` console script.
"""

"""Helpers every layer may use; they import no other deblurgan_jax module (see .importlinter)."""

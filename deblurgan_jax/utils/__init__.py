"""Bottom-layer helpers every other layer may use; they import no other deblurgan_jax module
(see .importlinter): file I/O (`files`) and image files (`images`)."""

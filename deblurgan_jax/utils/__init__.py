"""Bottom-layer helpers every other layer may use, importing nothing else from the package:
image files (`images`)."""

"""Training: the GAN train step, checkpointed loop and evaluation during training (`train`), and
data-parallel execution over devices and hosts (`parallel`). `train.py` at the repository root is
the entry point."""

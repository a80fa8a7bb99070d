"""Test-wide settings: CPU only, quiet TensorFlow, the project root importable, and one JAX
compilation cache for the whole session.

The cache matters for the suite's time: every in-process training run builds its jitted step
anew (the config is part of the closure), and subprocess commands start cold; with a persistent
cache an identical program compiles once per session. The folder is new for each session, so
nothing stale is ever read.
"""
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Subprocesses (commands, training runs, parallel workers) inherit these.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="deblurgan_jax_test_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

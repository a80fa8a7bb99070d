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

# The suite runs on two pytest-xdist workers (`-n 2 --dist loadfile`, .ci/run): compilation is
# mostly single-threaded, so two test files compile side by side on the 2 CI cores. Files are
# handed out in collection order; the longest ones go first so that none is left running alone
# at the end.
LONGEST_FIRST = ("test_parallel.py", "test_scale.py", "test_reliability.py", "test_train.py",
                 "test_video.py", "test_evaluate.py", "test_browser.py", "test_app.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept

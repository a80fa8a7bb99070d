"""Test-wide settings: CPU only, quiet TensorFlow, the project root importable, one JAX
compilation cache for the whole session, and one temporary folder removed at its end.

The cache matters for the suite's time: every in-process training run builds its jitted step
anew (the config is part of the closure), and subprocess commands start cold; with a persistent
cache an identical program compiles once per session. The folder is new for each session, so
nothing stale is ever read.
"""

import os
import sys
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles at XLA:CPU's optimisation level 0 with XLA:CPU's older (LLVM IR) fusion
# code generator instead of its MLIR fusion emitters. Most of the suite's time goes into
# compiling small programs (train steps, and thousands of op-by-op calls) that then run a few
# times: level 0 skips LLVM's optimisation passes and the older generator compiles each program
# in about half the time again (README, "Measured design choices"); results agree with the
# defaults to rounding. Users, the experiments and the benchmarks run with XLA's defaults.
# Subprocesses inherit these flags.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
for _flag in TEST_XLA_FLAGS:
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()
# One temporary folder for the session, removed at its end: the compilation cache and whatever
# TensorFlow (autograph) and the commands put in the system temp folder go there, so the suite
# leaves nothing behind. Subprocesses (commands, training runs, parallel workers) inherit these.
_SESSION_TMP = None
if "DEBLURGAN_JAX_TEST_TMP" not in os.environ:  # the first process (xdist workers inherit)
    _SESSION_TMP = tempfile.mkdtemp(prefix="deblurgan_jax_tests_")
    os.environ["DEBLURGAN_JAX_TEST_TMP"] = _SESSION_TMP
    os.environ["TMPDIR"] = _SESSION_TMP
    tempfile.tempdir = None  # read TMPDIR again
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(os.environ["DEBLURGAN_JAX_TEST_TMP"], "jax_cache")
)
os.makedirs(os.environ["JAX_COMPILATION_CACHE_DIR"], exist_ok=True)
# Programs that compile in under 0.1 s (thousands of op-by-op calls) are not written to the
# cache: writing one costs about as much as compiling it again (README, "Measured design
# choices"); train steps, initialisers and forward passes (0.1 s and more) are still shared
# between tests and subprocesses.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

# The README's test command installs with `pip --no-compile`: pip would otherwise spend about
# half its time compiling every module of TensorFlow, PyTorch and the rest to bytecode, most of
# which the suite never imports. Instead the suite's processes write the bytecode of what they
# import, once, even where the environment sets PYTHONDONTWRITEBYTECODE (subprocesses inherit
# this). The files land in the virtual environment and in __pycache__ folders git ignores.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The suite runs on two pytest-xdist workers (`-n 2 --dist loadfile`, .ci/run): compilation is
# mostly single-threaded, so two test files compile side by side on the 2 CI cores. pytest-xdist
# hands out the files with the most tests first; handing out the costliest first instead (by CPU
# time, subprocesses included) measured no faster, so the order is left to it.


def pytest_unconfigure(config):
    if _SESSION_TMP is not None:  # only the process that made it removes it
        import shutil

        shutil.rmtree(_SESSION_TMP, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Shared fixtures.

TINY_GENERATOR = {"ngf": 8, "n_blocks": 2}


@pytest.fixture(scope="session")
def tiny_generator_file(tmp_path_factory):
    """make(seed=0, zero_init_head=False) -> the path of a params file (plus its .json model
    config) of a tiny random generator (ngf 8, 2 blocks): quick to compile, enough to test
    every command on. With zero_init_head the generator starts at the identity."""

    def make(seed: int = 0, zero_init_head: bool = False) -> str:
        import jax  # after the environment above is set
        import jax.numpy as jnp

        from deblurgan_jax.networks import models
        from deblurgan_jax.weights import checkpoints

        g = models.ResnetGenerator(**TINY_GENERATOR, zero_init_head=zero_init_head)
        params = g.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))["params"]
        path = str(tmp_path_factory.mktemp("params") / "g.msgpack")
        checkpoints.save_generator(params, TINY_GENERATOR, path)
        return path

    return make


@pytest.fixture(scope="module")
def params_file(tiny_generator_file):
    """A tiny random generator (seed 0) as a params file; a test file that needs another one
    overrides this fixture with tiny_generator_file(...)."""
    return tiny_generator_file()

"""XLA's default optimisation level for the few tests that run one program many times.

conftest.py compiles the suite at level 0 (most tests compile small programs that run a few
times); a test that runs a train step a hundred times compiles it at XLA's default instead.
"""

from typing import Any

# XLA's DebugOptions default (xla/debug_options_flags.cc).
DEFAULT_LEVEL = {"xla_backend_optimization_level": 3}


def compile_at_default_level(jitted: Any, *args: Any) -> Any:
    """`jitted` compiled for `args` at XLA's default optimisation level (called like `jitted`)."""
    return jitted.lower(*args).compile(compiler_options=DEFAULT_LEVEL)

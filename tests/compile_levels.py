"""The compile level for the few tests that run one program many times.

conftest.py compiles the suite at level 0 (most tests compile small programs that run a few
times); a test that runs a train step a hundred times compiles it at XLA's optimisation level 1
instead: level 0 leaves the step's generated loops unoptimised, and level 1 runs it about as
fast as XLA's default (3) for much less compile time (README, "Measured design choices").
"""

from typing import Any

RUN_MANY_LEVEL = {"xla_backend_optimization_level": 1}


def compile_to_run_many(jitted: Any, *args: Any) -> Any:
    """`jitted` compiled for `args` at `RUN_MANY_LEVEL` (called like `jitted`)."""
    return jitted.lower(*args).compile(compiler_options=RUN_MANY_LEVEL)

"""Runs a command's `main(argv)` in-process, captured like a subprocess.

Each subprocess re-imports JAX and TensorFlow (5-10 s on the CI machine); the suite keeps one
real subprocess smoke test per command and runs the rest through this.
"""

import contextlib
import io
import subprocess
from typing import Callable, Sequence


def run_main(main: Callable[[Sequence[str]], int], *args: str) -> subprocess.CompletedProcess:
    """`main(args)` with stdout/stderr captured; argparse's SystemExit becomes the return code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

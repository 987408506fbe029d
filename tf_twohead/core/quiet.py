"""Keep TensorFlow's, absl's and LiteRT's native log lines off a user's terminal.

Their C++ code writes to file descriptor 2 directly (the absl banner, oneDNN and CUDA
notices, `failed call to cuInit` on a CPU machine, LiteRT's XNNPACK line), which no
Python setting fully silences. `native_stderr_silenced` points descriptor 2 at
/dev/null for the few calls that print them; `TF_TWOHEAD_VERBOSE=1` (the CLI's `-v`)
lets everything through.
"""

from __future__ import annotations

import contextlib
import os
import sys

VERBOSE_ENV = "TF_TWOHEAD_VERBOSE"


def verbose() -> bool:
    """Whether the user asked to see the libraries' own messages."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def native_stderr_silenced():
    """Within the block, writes to file descriptor 2 are dropped (unless verbose)."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (some embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)

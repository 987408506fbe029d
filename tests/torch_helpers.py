"""Run code under the system python3 with Debian's python3-torchvision (the PyTorch reference).

torch is never a dependency of tf-twohead; tests that compare against it drive it as a
subprocess and skip, naming the package to install, where it is not importable.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

TORCH_PYTHON = "/usr/bin/python3"


def run_torch(code: str, *args: str) -> str:
    """Run `code` with `args` under the system python3 + torchvision; return its stdout."""
    if shutil.which(TORCH_PYTHON) is None:
        pytest.skip(f"no {TORCH_PYTHON}")
    probe = subprocess.run([TORCH_PYTHON, "-c", "import torchvision"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"torchvision is not importable by {TORCH_PYTHON}: "
                    "apt-get install python3-torchvision")
    done = subprocess.run([TORCH_PYTHON, "-c", code, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout

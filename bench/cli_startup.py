"""How fast the CLI answers a person: `--help`, a config error and a missing model.

Each command runs in a fresh interpreter, `--runs` times; the median wall time is
printed for this checkout and for a baseline revision (default: the last commit before
the CLI checked arguments ahead of TensorFlow), checked out into a temporary git
worktree and run with the same interpreter. The CPU's vector flags come first: the
TensorFlow import that the baseline pays is what differs most between machines.

Usage: python bench/cli_startup.py [--baseline REV] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "--help": ["--help"],
    "config error": ["train", "--config", "nosuch.yaml"],
    "missing model": ["evaluate", "/no/such/run"],
}


def median_seconds(source: Path, args: list[str], runs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(source)}
    code = "import sys; from tf_twohead.cli import main; sys.exit(main())"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, *args], cwd=source, env=env,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="85e46a7", help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=5, help="runs per command")
    args = parser.parse_args()
    print(f"CPU flags: {cpu_flags()}")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(baseline),
                        args.baseline], cwd=ROOT, check=True)
        try:
            print(f"\n| command | this checkout | {args.baseline} | ratio |\n|---|---|---|---|")
            for name, command in COMMANDS.items():
                now = median_seconds(ROOT, command, args.runs)
                before = median_seconds(baseline, command, args.runs)
                print(f"| {name} | {now:.2f} s | {before:.2f} s | {before / now:.1f}x faster |")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT)


if __name__ == "__main__":
    main()

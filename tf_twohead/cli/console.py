"""What the CLI says when a command fails or is stopped: one line per user error, and a
message for Ctrl-C or SIGTERM that fits the command.

SIGTERM (a scheduler, `kill`, a container stopping) is handled like Ctrl-C: it raises
`KeyboardInterrupt` in the main thread, so every `finally` runs and temporary files and
folders (atomic writes, the converter's SavedModel) are removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import warnings

from tf_twohead.core.errors import ParityError, TwoHeadError
from tf_twohead.core.quiet import VERBOSE_ENV, native_stderr_silenced, verbose

# After an interruption: what is safe, and how to go on.
INTERRUPTED = {
    "train": "Finished epochs are saved (best.keras is intact); continue with the same "
             "command plus --resume.",
    "tune": "Run the same command again: the search continues, and its unfinished trial "
            "from its last finished epoch.",
    "convert": "Nothing was written: the partial conversion was removed.",
    "benchmark": "The files exported so far are complete and are reused by the same "
                 "command, which measures them again.",
    "evaluate": "Files already written are complete; run the same command again for the rest.",
    "data": "The dataset folder may be incomplete; run the same command again.",
    "weights": "Nothing was written.",
}


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises `KeyboardInterrupt` (main thread only)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(command: str, function, args) -> int:
    """Run one CLI command; turn user errors and interruptions into one message and an
    exit code (0 done, 1 parity failed, 2 user error, 130 interrupted)."""
    try:
        with sigterm_as_interrupt():
            return function(args)
    except ParityError as e:  # the file is kept under a name that says it failed
        print(f"tf-twohead {command}: {e}", file=sys.stderr)
        return 1
    except (TwoHeadError, FileNotFoundError, ValueError) as e:
        print(f"tf-twohead {command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tf-twohead {command}: error: {os_error(command, e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted. {INTERRUPTED.get(command, '')}".rstrip(), file=sys.stderr)
        return 130


def os_error(command: str, e: OSError) -> str:
    """One line for a file-system failure: what, which file, and what to do."""
    where = f" {e.filename}" if e.filename else ""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        after = (" best.keras is intact: free some space, then continue with --resume."
                 if command == "train" else " Free some space and run it again.")
        return f"no space left on the device writing{where}.{after}"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write{where}: {reason}. Choose a folder you can write "
                "(output_dir=..., --out ...).")
    return f"{reason}:{where}" if where else reason


def set_verbose(on: bool) -> None:
    """`-v`: let TensorFlow, absl, Keras and LiteRT print their own messages."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read when TensorFlow loads


def load_tensorflow() -> None:
    """Import TensorFlow and Keras and initialise the devices, without their log lines
    (the absl banner, oneDNN and CUDA notices, `failed call to cuInit`) unless verbose."""
    with native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # where cuInit fails, loudly, on a CPU machine
    if not verbose():
        tf.get_logger().setLevel("ERROR")
        for module in ("tensorflow", "keras", "absl", "keras_tuner", "tensorboard", "google"):
            warnings.filterwarnings("ignore", module=module)

"""Every error a user of tf-twohead catches, in one place.

Each one is a `TwoHeadError` (so `except tt.TwoHeadError` catches any user error)
and also keeps the built-in base it always had (`ValueError`, `RuntimeError`), so
code written against the old classes keeps working. The CLI turns each into one line
and exit code 2 (1 for a failed parity check).
"""

from __future__ import annotations

from pathlib import Path

from tf_twohead.core.api import public


@public
class TwoHeadError(Exception):
    """Base of the errors tf-twohead raises for things a user can fix."""


@public
class ConfigError(TwoHeadError, ValueError):
    """A config file or override that cannot be used; the message says which key."""


@public
class DataError(TwoHeadError, ValueError):
    """The data cannot be used as it is; the message lists every problem found."""


@public
class WeightsError(TwoHeadError, ValueError):
    """Weights that do not fit the model, or cannot be had; the message lists every
    mismatch, or says how to pass a local file."""


@public
class TorchFileError(WeightsError):
    """A file that is not a readable PyTorch state_dict, or one whose tensors reach past
    their storage; the message names the file and the tensor."""


@public
class ModelFileError(TwoHeadError, ValueError):
    """A model file (`.keras`, `.tflite`) that cannot be loaded safely, or whose
    metadata is broken; the message names the file."""


@public
class RunExistsError(TwoHeadError, RuntimeError):
    """A run or search folder that would be clobbered, or resumed with other settings."""


@public
@public
class DivergedError(TwoHeadError, RuntimeError):
    """Training produced a non-finite loss; nothing of that epoch was saved."""


@public
class ExportError(TwoHeadError, RuntimeError):
    """The model cannot be converted as asked; the message says why and what to do."""


@public
class ParityError(ExportError):
    """The converted model does not answer like the source model within the bounds.

    Attributes:
        report: dict. The parity report (also written to `<failed>.parity.json`).
        path: Path. Where the converted model was kept (`*.parity-failed.tflite`).
    """

    def __init__(self, message: str, report: dict, path: Path):
        super().__init__(message)
        self.report, self.path = report, path

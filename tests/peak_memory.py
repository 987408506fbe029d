"""Peak resident memory of a snippet, measured in a fresh Python process.

The hostile-input tests use it where the bound is memory: the snippet runs after its
imports, and the result is the peak (`VmHWM`) above the peak those imports reached, in MB.
A fresh process, because this one's peak already carries whatever the suite did before.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHILD = """
import json, sys
{imports}
def _peak():
    with open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith("VmHWM:")).split()[1]) / 1024
_base = _peak()
try:
{body}
    _outcome = "done"
except Exception as e:
    _outcome = f"{{type(e).__name__}}: {{e}}"
print(json.dumps({{"extra_mb": _peak() - _base, "outcome": _outcome}}))
"""


def peak_mb(imports: str, body: str, timeout: float = 300) -> tuple[float, str]:
    """`(MB above the baseline, outcome)`: "done", or the exception's type and message.

    Example:

    >>> peak_mb("import numpy as np", "np.ones(10**8)")
    (763.0, 'done')
    """
    code = CHILD.format(imports=textwrap.dedent(imports),
                        body=textwrap.indent(textwrap.dedent(body), "    "))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["extra_mb"], result["outcome"]

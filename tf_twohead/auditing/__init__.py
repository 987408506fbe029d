"""The data audit: duplicates and leakage, label conflicts, likely label errors, balance.

`audit(root, ...)` (in `run.py`) returns an `AuditResult` of pandas DataFrames and writes
its report files; `tf-twohead data audit ROOT` is its command line.
"""

from tf_twohead.auditing.run import AuditResult, audit

__all__ = ["AuditResult", "audit"]

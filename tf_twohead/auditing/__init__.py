"""The data audit: duplicates and leakage, label conflicts, likely label errors, balance.

`audit(root, ...)` (in `run.py`, also `tt.audit`) returns an `AuditResult` of pandas
DataFrames and writes its report files; `tf-twohead data audit ROOT` is its command line.
`options` checks the arguments without loading TensorFlow.
"""

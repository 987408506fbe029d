"""The bottom of the house: what every other package may use, and which imports no
TensorFlow, Keras or Keras Tuner.

`defaults` (the shared vocabulary), `errors`, `version`, `quiet` (native log lines),
`fileio` (atomic writes, hashing, disk space), `runtime` (TensorFlow threads, the oneDNN
check), `tables` (Markdown tables), `decisions` (thresholds), `best` (the one best-epoch
rule), `run_folder` (the one owner of a run folder's files) and `api` (the public names).
"""

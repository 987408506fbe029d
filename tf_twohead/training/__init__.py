"""Training runs: `run.train(cfg)` (a plain or staged run), the epochs loop every run
shares (`loop`), the combined model's staged run (`staged`), resuming (`resume`), what a
run prints (`progress`) and `train.strategy` (`distribute`).

Submodules are imported by name (`from tf_twohead.training.run import train`), so that
importing one light module (`resume`) does not load TensorFlow.
"""

"""The training recipe as Keras objects: compile (losses, loss weights, schedules:
`compiling`), per-head metrics (`metrics`), `TorchAdam` and `OneCycle` (`optimizers`)."""

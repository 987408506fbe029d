"""`.keras` files from anyone: checked before Keras builds anything (`check`), then loaded
in Keras' safe mode with one-line errors (`load`). Below `pretrained`, which starts a
model from a trained one (`model.init_from`), and `inference`, `training` and `tuning`,
which load models and resume runs."""

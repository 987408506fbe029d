"""Data: CSV splits (`splits`), the one image decoder (`images`), the validated resized
cache (`cache`), tf.data pipelines (`pipeline`) and dataset writers (`sources`).

Submodules are imported where used, so reading CSVs or writing a dataset does not load
TensorFlow; the main entry points are re-exported from `tf_twohead`.
"""

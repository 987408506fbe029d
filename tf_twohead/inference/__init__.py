"""Inference: `Predictor` over `.keras` and `.tflite` files (`predictor`), loading a
`.keras` file safely (`saving`), the `.tflite` metadata (`metadata`), `predict` over
files and globs (`files`), latency (`latency`) and a model's own data split
(`model_split`)."""

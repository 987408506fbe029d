"""Export: `.keras` -> `.tflite` with metadata and a parity check (`tflite`), the serving
graph and converter call (`serving`), and the parity test itself (`parity`)."""

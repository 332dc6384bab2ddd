"""Model architectures and the model artifact (checkpoint + ONNX metadata)."""

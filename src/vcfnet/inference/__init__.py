"""Inference: one Predictor interface (PyTorch and onnxruntime backends), its inputs, Grad-CAM
and ONNX export."""

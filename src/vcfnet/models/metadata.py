"""Names in an exported ONNX model: graph input/outputs and vcfnet's metadata keys (no torch)."""

ONNX_FORMAT = "vcfnet-onnx-v1"
#: ONNX graph input / outputs written by ``vcfnet.inference.export.export_onnx``.
ONNX_INPUT = "image"
ONNX_OUTPUTS = ("logits", "probabilities")
#: metadata key of an int8-quantized export (value "int8")
QUANTIZED_KEY = "vcfnet.quantized"

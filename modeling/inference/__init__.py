"""Inference: inputs to batches, the backends, the `Detector`, and the ONNX export it can use."""

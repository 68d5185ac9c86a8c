"""The execution layer: onnxruntime/torch/TVM runners and compilation. The only place that imports tvm."""

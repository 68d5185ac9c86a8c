"""The execution layer: onnxruntime/torch/TVM runners and compilation. The only place that imports tvm.

``import kernels`` is light: torch, onnx and onnxruntime are imported inside the functions that
use them. Modules: ``timing`` (the one timing protocol), ``onnx_export``, ``runners``, ``errors``,
``tvm/`` (every TVM import, build, schedule, tuning database, targets, RPC; tvm is imported only there).
"""

from kernels.errors import KernelError
from kernels.timing import Timing, measure

__all__ = ["KernelError", "Timing", "measure"]

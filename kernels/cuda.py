"""CUDA measurement: one module on the local NVIDIA GPU, timed end to end.

Contract: ``cuda_device_name()`` is the first GPU's name, or None when torch sees no CUDA device
(``cuda_unavailable_reason()`` says why, for skip messages). ``CudaTorchRunner(module,
example_input, dtype=)`` copies the module and input to ``cuda:0`` in ``fp32``, ``tf32`` or
``fp16``; each call runs one batch under ``torch.inference_mode`` and waits for the GPU
(``torch.cuda.synchronize``), so :func:`kernels.timing.measure` times what a user waits for,
launches included. ``run(x)`` returns float32 numpy logits. No GPU: :class:`KernelError`.

``fp32`` is IEEE float32 throughout: TF32 tensor-core math, which cuDNN convolutions use by
default on Ampere and newer cards (``torch.backends.cudnn.allow_tf32``), is switched off for the
call and restored after it. On an H100 that default put the logits of a tiny_mbv3 subnet 2% away
from the CPU's. ``tf32`` keeps float32 tensors with TF32 math allowed (the faster, lossy default).

With ``graph=True`` the forward pass is captured once as a CUDA graph and each call replays it:
the GPU time of the kernels back to back, without PyTorch's per-op dispatch on the CPU (what a
compiled deployment such as TVM or TensorRT sees). Eager calls (``graph=False``) include that
dispatch, which dominates small batch-1 networks on a fast GPU (an H100 ran ofa_mbv3 subnets
eagerly in 7-9 ms, of which the kernels are a fraction). ``run(x)`` always runs eagerly.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np

from kernels.errors import KernelError

DTYPES = ("fp32", "tf32", "fp16")


def cuda_unavailable_reason() -> str | None:
    """None when a CUDA GPU is usable, else a one-line reason."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.backends.cuda.is_built():
        return f"this torch build ({torch.__version__}) has no CUDA support"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (no NVIDIA GPU or driver on this machine)"
    return None


def cuda_device_name() -> str | None:
    if cuda_unavailable_reason() is not None:
        return None
    import torch

    return torch.cuda.get_device_name(0)


class CudaTorchRunner:
    """One module on ``cuda:0`` (module docstring); ``backend`` is ``torch-cuda`` or ``torch-cuda-graph``."""

    def __init__(self, module, example_input, *, dtype: str = "fp16", graph: bool = False) -> None:
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise KernelError(f"the torch-cuda backend needs a CUDA GPU: {reason}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        import torch

        self._torch = torch
        self.dtype = torch.float16 if dtype == "fp16" else torch.float32
        self.allow_tf32 = dtype != "fp32"
        self.threads = 1
        self.device_name = torch.cuda.get_device_name(0)
        self.module = copy.deepcopy(module).eval().to("cuda:0", dtype=self.dtype)
        self._x = example_input.detach().to("cuda:0", dtype=self.dtype)
        self.backend = "torch-cuda-graph" if graph else "torch-cuda"
        self._graph = self._capture() if graph else None

    def _capture(self):
        """The forward pass on the example input as a replayable CUDA graph (after warm-up runs on
        a side stream, as torch.cuda.graph requires)."""
        torch = self._torch
        with self._math_mode():
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(3):
                    self.module(self._x)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                self._graph_out = self.module(self._x)
        torch.cuda.synchronize()
        return graph

    @contextlib.contextmanager
    def _math_mode(self):
        backends = self._torch.backends
        saved = backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32
        backends.cudnn.allow_tf32 = backends.cuda.matmul.allow_tf32 = self.allow_tf32
        try:
            yield
        finally:
            backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = saved

    def _forward(self, x):
        with self._math_mode(), self._torch.inference_mode():
            out = self.module(x)
            self._torch.cuda.synchronize()
        return out

    def __call__(self) -> object:
        if self._graph is not None:
            self._graph.replay()
            self._torch.cuda.synchronize()
            return self._graph_out
        return self._forward(self._x)

    def run(self, x: np.ndarray) -> np.ndarray:
        t = self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to("cuda:0", dtype=self.dtype)
        return self._forward(t).float().cpu().numpy()

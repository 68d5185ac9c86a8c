"""CUDA measurement: one module on the local NVIDIA GPU, timed end to end.

Contract: ``cuda_device_name()`` is the first GPU's name, or None when torch sees no CUDA device
(``cuda_unavailable_reason()`` says why, for skip messages). ``CudaTorchRunner(module,
example_input, dtype=)`` copies the module and input to ``cuda:0`` in ``fp32`` or ``fp16``; each
call runs one batch under ``torch.inference_mode`` and waits for the GPU
(``torch.cuda.synchronize``), so :func:`kernels.timing.measure` times what a user waits for,
launches included. ``run(x)`` returns float32 numpy logits. No GPU: :class:`KernelError`.
"""

from __future__ import annotations

import copy

import numpy as np

from kernels.errors import KernelError

DTYPES = ("fp32", "fp16")


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
    backend = "torch-cuda"

    def __init__(self, module, example_input, *, dtype: str = "fp16") -> None:
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise KernelError(f"the torch-cuda backend needs a CUDA GPU: {reason}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        import torch

        self._torch = torch
        self.dtype = torch.float16 if dtype == "fp16" else torch.float32
        self.threads = 1
        self.device_name = torch.cuda.get_device_name(0)
        self.module = copy.deepcopy(module).eval().to("cuda:0", dtype=self.dtype)
        self._x = example_input.detach().to("cuda:0", dtype=self.dtype)

    def _forward(self, x):
        with self._torch.inference_mode():
            out = self.module(x)
        self._torch.cuda.synchronize()
        return out

    def __call__(self) -> object:
        return self._forward(self._x)

    def run(self, x: np.ndarray) -> np.ndarray:
        t = self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to("cuda:0", dtype=self.dtype)
        return self._forward(t).float().cpu().numpy()

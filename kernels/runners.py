"""Runners: one module on one CPU backend, ready to time.

Contract: a runner is built once from an ``nn.Module`` and an example input (a torch tensor) and
owns its copy of that input. ``runner()`` runs one inference on the stored example input (what
:func:`kernels.timing.measure` times); ``runner.run(x)`` takes a float32 numpy array and returns
the logits as numpy. ``threads`` (>= 1) is the intra-op thread count; ``backend`` names it.
``OrtRunner`` exports to ONNX (static shape, :func:`kernels.onnx_export.export_onnx`) in a
temporary folder and runs onnxruntime's CPU provider, one inter-op thread, all graph optimisations.
``TorchRunner`` runs the module in eval mode under ``torch.inference_mode``; note that
``torch.set_num_threads`` is process-wide, so a call that needs another count sets it and
restores the caller's count afterwards (no cost when they already agree).
:func:`denormals_flushed` makes torch flush denormal floats (as onnxruntime does) inside a block
only, restoring the caller's setting after it.
``TvmRunner`` exports to ONNX the same way, then imports, schedules and builds it with Apache TVM
for this CPU, untuned (:mod:`kernels.tvm.build`: the simple default schedule, ``relax``
VirtualMachine, exactly ``threads`` TVM threads); ``build_s`` is how long that took.
``OrtFileRunner``, ``TvmOnnxRunner`` and ``TvmLibraryRunner`` run artefacts already on disk (an
ONNX file, the same built by TVM, a TVM shared library) with the same settings, and
``TvmModelRunner`` a ``kernels.tvm.build.TvmModel`` already loaded; their example input is a numpy
array. :func:`make_runner` also takes a :class:`kernels.quantize.QuantizedOnnx`
(an int8 QDQ file) as the module, for onnxruntime and tvm only.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from kernels.errors import KernelError
from kernels.onnx_export import INPUT_NAME, export_onnx

BACKENDS = ("onnxruntime", "torch", "tvm")


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """torch flushes denormal floats to zero inside the block (``torch.set_flush_denormal``, as onnxruntime
    does: denormal activations make CPU kernels several times slower); the setting the calling thread had
    before is restored after it. torch has no getter for the flag, so it is probed: with flushing on, a
    denormal float32 reads back as zero."""
    import torch

    def flushing() -> bool:
        return bool(torch.tensor([1e-40], dtype=torch.float32).item() == 0.0)

    before = flushing()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return threads


class Runner:
    backend = ""

    def __call__(self) -> object:
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def ort_session(path, *, threads: int, spin: bool = True):
    """An onnxruntime CPU session for the ONNX file at ``path``: ``threads`` intra-op threads, one
    inter-op thread, all graph optimisations, denormals flushed to zero."""
    threads = _check_threads(threads)
    try:
        import onnxruntime as ort
    except ImportError:
        raise KernelError("the onnxruntime backend needs onnxruntime: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # denormal activations (untrained or decaying nets) hit a slow CPU path and made the same
    # subnet's latency vary by up to 2x between sessions; flush them to zero
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if not spin:  # idle ORT threads otherwise busy-wait and slow down whatever runs next
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"onnxruntime session creation failed: {err}") from err


class OrtRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, module, example_input, *, threads: int, opset: int = 17, spin: bool = True) -> None:
        self.threads = _check_threads(threads)
        with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
            path = export_onnx(module, example_input, Path(tmp) / "model.onnx", opset=opset)
            self.session = ort_session(path, threads=self.threads, spin=spin)
        self._feed = {INPUT_NAME: example_input.detach().cpu().numpy().astype(np.float32)}

    def __call__(self) -> object:
        return self.session.run(None, self._feed)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, module, example_input, *, threads: int) -> None:
        import torch

        self.threads = _check_threads(threads)
        self._torch = torch
        self.module = module.eval()
        self._x = example_input.detach().clone()

    def _forward(self, x):
        torch = self._torch
        before = torch.get_num_threads()
        if before == self.threads:
            with torch.inference_mode():
                return self.module(x)
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return self.module(x)
        finally:
            torch.set_num_threads(before)

    def __call__(self) -> object:
        return self._forward(self._x)

    def run(self, x: np.ndarray) -> np.ndarray:
        x = self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return self._forward(x).numpy()


class TvmModelRunner(Runner):
    """A loaded ``kernels.tvm.build.TvmModel`` (e.g. the build ``kernels.tvm.select`` chose), run on
    ``example_input`` with the model's threads."""

    backend = "tvm"

    def __init__(self, model, example_input: np.ndarray) -> None:
        self.threads = model.threads
        self.model = model
        self._x = self.model.tensor(example_input)

    def __call__(self) -> object:
        return self.model.invoke(self._x)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.model.run(x)


class TvmRunner(TvmModelRunner):
    def __init__(self, module, example_input, *, threads: int, opset: int = 17) -> None:
        from kernels.tvm import build as tvm_build

        start = time.perf_counter()
        tvm_build.host_target(_check_threads(threads))  # fails fast, before the export, when TVM is missing
        with tempfile.TemporaryDirectory(prefix="hwnas-tvm-") as tmp:
            path = export_onnx(module, example_input, Path(tmp) / "model.onnx", opset=opset)
            model = tvm_build.compile_onnx(path, threads=threads)
        self.build_s = time.perf_counter() - start
        super().__init__(model, example_input.detach().cpu().numpy())


class OrtFileRunner(OrtRunner):
    """onnxruntime on an ONNX file already written (e.g. an export), not on a module."""

    def __init__(self, path, example_input: np.ndarray, *, threads: int, spin: bool = True) -> None:
        self.threads = _check_threads(threads)
        self.session = ort_session(path, threads=self.threads, spin=spin)
        self._feed = {INPUT_NAME: np.ascontiguousarray(example_input, dtype=np.float32)}


class TvmOnnxRunner(TvmRunner):
    """TVM on an ONNX file already written (e.g. an int8 QDQ model), built as ``TvmRunner`` builds;
    ``input_shape`` fixes a symbolic batch axis; ``integer`` runs QDQ convolutions in integer compute
    (``kernels.tvm.int8``)."""

    def __init__(self, path, example_input: np.ndarray, *, threads: int, input_shape=None,
                 integer: bool = False) -> None:
        from kernels.tvm import build as tvm_build

        start = time.perf_counter()
        model = tvm_build.compile_onnx(path, threads=_check_threads(threads), input_shape=input_shape, integer=integer)
        self.build_s = time.perf_counter() - start
        TvmModelRunner.__init__(self, model, example_input)


class TvmLibraryRunner(TvmModelRunner):
    """A TVM shared library already exported (``kernels.tvm.build.export_library``), reloaded and run."""

    def __init__(self, path, example_input: np.ndarray, *, threads: int) -> None:
        from kernels.tvm import build as tvm_build

        super().__init__(tvm_build.TvmModel(tvm_build.load_library(path), threads=_check_threads(threads)),
                         example_input)


CUDA_BACKENDS = ("torch-cuda", "torch-cuda-fp32", "torch-cuda-graph", "torch-cuda-graph-fp32")


def make_runner(backend: str, module, example_input, *, threads: int, spin: bool = True) -> Runner:
    """A runner for ``backend`` in ``BACKENDS``, or one of ``CUDA_BACKENDS`` on the local GPU: eager
    or CUDA-graph replay (``-graph``), fp16 or fp32 (``-fp32``); ``threads`` is ignored there (see
    ``kernels.cuda``). ``spin=False`` stops onnxruntime's idle threads
    busy-waiting: use it when timing several backends interleaved (it does not apply to tvm).
    ``module`` may be a :class:`kernels.quantize.QuantizedOnnx`: its file runs on onnxruntime or tvm."""
    from kernels.quantize import QuantizedOnnx

    if isinstance(module, QuantizedOnnx):
        return _quantized_runner(backend, module, example_input, threads=threads, spin=spin)
    if backend == "onnxruntime":
        return OrtRunner(module, example_input, threads=threads, spin=spin)
    if backend == "torch":
        return TorchRunner(module, example_input, threads=threads)
    if backend == "tvm":
        return TvmRunner(module, example_input, threads=threads)
    if backend in CUDA_BACKENDS:
        from kernels.cuda import CudaTorchRunner

        return CudaTorchRunner(module, example_input, dtype="fp32" if backend.endswith("fp32") else "fp16",
                               graph="-graph" in backend)
    raise KernelError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}")


def _quantized_runner(backend: str, q, example_input, *, threads: int, spin: bool) -> Runner:
    x = example_input.detach().cpu().numpy() if hasattr(example_input, "detach") else np.asarray(example_input)
    if backend == "onnxruntime":
        return OrtFileRunner(q.path, x, threads=threads, spin=spin)
    if backend == "tvm":
        return TvmOnnxRunner(q.path, x, threads=threads, input_shape=q.input_shape, integer=True)
    if backend == "torch" or backend in CUDA_BACKENDS:
        raise KernelError(f"an int8 ONNX model runs on onnxruntime or tvm, not {backend}")
    raise KernelError(f"unknown backend {backend!r}; an int8 ONNX model runs on 'onnxruntime' or 'tvm'")

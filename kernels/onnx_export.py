"""ONNX export of one ``nn.Module``.

Contract: ``export_onnx(module, example_input, path, opset=, dynamic_batch=)`` writes a checked
ONNX model with one input named ``"input"`` and one output named ``"logits"`` to ``path`` and
returns it as a ``Path``. The write is atomic: a temporary file in the same folder is renamed over
``path`` only after ``onnx.checker`` accepts it. The module is put in eval mode (callers own it).
With ``dynamic_batch`` the first axis of input and output is symbolic ("batch"). The TorchScript
exporter is tried first (fast); the dynamo exporter is the fallback. Every failure is a
:class:`KernelError` naming the step (export, check, write).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from kernels.errors import KernelError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def _export(module, example_input, target: str, opset: int, dynamic_batch: bool) -> None:
    import torch

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    common = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    errors = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, not gone
        try:
            torch.onnx.export(module, (example_input,), target, dynamo=False, dynamic_axes=axes, **common)
            return
        except Exception as err:  # noqa: BLE001 - fall back to the other exporter
            errors.append(f"torchscript exporter: {type(err).__name__}: {err}")
        try:
            shapes = None
            if dynamic_batch:
                shapes = ({0: torch.export.Dim("batch")},)
            torch.onnx.export(module, (example_input,), target, dynamo=True, dynamic_shapes=shapes, **common)
            return
        except Exception as err:  # noqa: BLE001
            errors.append(f"dynamo exporter: {type(err).__name__}: {err}")
    raise KernelError("ONNX export failed: " + "; ".join(errors))


def export_onnx(module, example_input, path, *, opset: int = 17, dynamic_batch: bool = False) -> Path:
    """Export ``module`` at ``example_input`` to ``path`` (atomic, checked); returns the path."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= 23:
        raise ValueError(f"opset must be an integer in [7, 23], got {opset!r}")
    try:
        import onnx
    except ImportError:
        raise KernelError("ONNX export needs the onnx package: pip install onnx") from None
    path = Path(path)
    if not path.parent.is_dir():
        raise KernelError(f"ONNX write failed: folder {str(path.parent)!r} does not exist")
    module.eval()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _export(module, example_input, tmp, opset, dynamic_batch)
        try:
            onnx.checker.check_model(tmp)
        except Exception as err:  # noqa: BLE001
            raise KernelError(f"ONNX check failed for the exported model: {err}") from err
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise KernelError(f"ONNX write failed: cannot move the model to {str(path)!r}: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path

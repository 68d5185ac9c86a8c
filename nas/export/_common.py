"""What every step of ``nas export`` shares: the error type, the file names, step errors and the parity check."""

from __future__ import annotations

import numpy as np

from search_spaces import NASError

FORMATS = ("torch", "onnx", "tvm")
FORMAT_VERSION = 1
OPSET = 17
PARITY_RTOL = 1e-3  # allowed max abs diff per unit of output magnitude (TVM measured ~3e-4 / 150)
PARITY_SEED = 0
RANDOM_INIT_SEED = 0  # the random inputs that fit BN statistics when there is no checkpoint
FILES = {"torch": "model.pt", "onnx": "model.onnx", "tvm": "model.so"}
BACKEND = {"torch": "torch", "onnx": "onnxruntime", "tvm": "tvm"}
STEP = {"torch": "torch export", "onnx": "ONNX export", "tvm": "TVM build"}


class ExportError(NASError, RuntimeError):
    """An export input is unusable or a step failed; the message names the step and the format."""


def check_tune_minutes(minutes: float) -> float:
    """``--tune-minutes`` as a float; ``ExportError`` unless it is a finite number >= 0."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 <= minutes < float("inf"):
        raise ExportError(f"--tune-minutes must be a number >= 0, got {minutes!r}")
    return float(minutes)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:400] + "...") if len(text) > 400 else text


def step_error(fmt_step: str, err: BaseException) -> ExportError:
    """``err`` as one line that starts with the step ("ONNX export failed: ...")."""
    if isinstance(err, ExportError):
        return err
    message = one_line(err)
    head = fmt_step.split()[0]
    if message.lower().startswith(head.lower()) and " failed" in message[:40]:
        return ExportError(message)  # a KernelError that already names its step (e.g. "TVM import failed: ...")
    return ExportError(f"{fmt_step} failed: {type(err).__name__}: {message}" if not isinstance(err, NASError)
                       else f"{fmt_step} failed: {message}")


def parity(reference: np.ndarray, got: np.ndarray) -> dict:
    """Max abs diff of ``got`` from ``reference``, the output magnitude and the tolerance it implies."""
    diff = float(np.max(np.abs(reference.astype(np.float64) - got.astype(np.float64))))
    magnitude = float(np.max(np.abs(reference)))
    return {"max_abs_diff": diff, "output_max_abs": magnitude, "tolerance": PARITY_RTOL * max(1.0, magnitude)}


def verified(label: str, reference: np.ndarray, got: np.ndarray) -> dict:
    """The parity of ``got``; ``ExportError`` naming ``label`` when it is above the tolerance (or not finite)."""
    result = parity(reference, got)
    if not np.isfinite(result["max_abs_diff"]) or result["max_abs_diff"] > result["tolerance"]:
        raise ExportError(f"{label} parity check failed: max abs diff {result['max_abs_diff']:.3g} > tolerance "
                          f"{result['tolerance']:.3g} (outputs up to {result['output_max_abs']:.3g})")
    return result

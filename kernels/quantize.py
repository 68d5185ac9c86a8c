"""Post-training int8 quantization with onnxruntime: a float model to a QDQ int8 ONNX file.

Contract:
- :func:`quantize_module` exports an ``nn.Module`` (eval) at a batch-1 ``example_input`` with
  :func:`kernels.onnx_export.export_onnx` (dynamic batch by default) into a temporary folder and
  hands it to :func:`quantize_onnx`, which quantizes an existing float ONNX file. Both return a
  :class:`QuantizedOnnx`: the int8 file plus what was quantized, how and where.
- Quantization is ``onnxruntime.quantization.quantize_static`` in ``QuantFormat.QDQ``: signed int8
  weights (``QInt8``, symmetric: ``WeightSymmetric``) and 8-bit activations, unsigned by default
  (``QuantRecipe.activation_type="uint8"``, U8S8; ``"int8"`` gives S8S8). Why unsigned: on this
  CPU (AVX-512 VNNI, onnxruntime 1.32) an S8S8 QDQ file of an ofa_mbv3 subnet at 160 px had only
  31 of its 62 Convs fused into ``QLinearConv`` (the depthwise and most expand convs stayed float
  convs wrapped in Q/DQ) and ran 2.9x slower than the float model (40 ms vs 13.7 ms, 2 threads);
  the U8S8 file fused all 62 and ran at 11.9 ms vs 12.3 ms float. Int8 accuracy is the same kind
  of figure either way (8-bit activations, int32 accumulation).
  activations symmetric or not (:class:`QuantRecipe`), per-output-channel or per-tensor weight
  scales, calibrated over a float32 ``(N, C, H, W)`` array fed in batches of up to
  ``CALIBRATION_BATCH`` (or the model's static batch) with ``MinMax``, ``Entropy`` or
  ``Percentile`` (:data:`CALIBRATION_METHODS`). Int32 biases; Relu/Clip after a quantized op are
  folded into its output range (ORT's default for asymmetric activations).
- ``QuantRecipe.fp32_scopes`` keeps torch module paths float: their Conv/Gemm/MatMul nodes go to
  ``nodes_to_exclude``. :func:`nodes_in_scopes` maps a dotted module path to node names the way
  the TorchScript exporter writes them: one name level per module level, each level being that
  module's *unqualified* name (from the last non-numeric atom, ``torch.onnx`` ``_unqualified_variable_name``).
  So ``"blocks.3"`` is the prefix ``/blocks/blocks.3/``, ``"blocks.3.depthwise.0"`` is
  ``/blocks/blocks.3/depthwise/depthwise.0/`` and ``"classifier"`` is ``/classifier/`` (checked
  on real exports, nested ``nn.Sequential`` included). The dynamo exporter names nodes otherwise;
  there a scope matches nothing and raises.
- Pre-processing: ``quant_pre_process`` (symbolic shape inference and ORT's basic graph
  optimisations) runs first, in a temporary folder (~0.02 s on the test CNN). It is needed: the
  TorchScript exporter deduplicates equal initializers and can leave an ``Identity`` feeding a Conv
  bias (seen with all-zero BN-folded biases); without pre-processing ORT logs "Expected bias ... to
  be an initializer" and leaves that bias float. It keeps every node name (scopes still apply) and
  silences ORT's "Please consider pre-processing" warnings.
- Entropy calibration: ``quantize_static`` cannot pass ``num_bins`` to the calibrator, whose
  defaults (128 histogram bins, 128 quantized bins) leave the KL search one candidate, the full
  range, until later batches widen the histogram: on the test CNN ``"entropy"`` gave the same
  logits as ``"minmax"``. With 2048 bins (through ORT's calibrator directly) it took 9-16 s there
  and was no better, so the ORT default stays. ``"percentile"`` is 99.999% over 2048 bins,
  symmetric ranges. ORT's calibrators print progress; that output is swallowed here.
- The write is atomic: ``quantize_static`` writes a temporary file in ``out_path``'s folder, which
  is renamed over ``out_path``; on any failure nothing is left there (ORT's own scratch files go to
  the system temporary folder).
- Errors are :class:`~kernels.errors.KernelError` with one line naming the problem: an empty
  calibration set, non-finite calibration values, a calibration shape that does not fit the model
  input, a scope that matches no node, and any onnxruntime failure (the step named). A malformed
  :class:`QuantRecipe` raises ``ValueError`` when built.
- :func:`run_batches` runs an ONNX file (float or QDQ) over an image array in batches with the
  runners' onnxruntime session (:func:`kernels.runners.ort_session`): the int8 accuracy path.
  :class:`QuantizedOnnx` also runs through :func:`kernels.runners.make_runner` ("onnxruntime",
  "tvm"), hence :func:`kernels.latency.time_module`.
- :func:`cpu_isa` names the best int8-relevant x86 ISA of this CPU (int8 latencies depend on it).

onnxruntime on this machine (AVX-512 VNNI) fuses DQ → Conv → Q into int8 kernels, so the QDQ
file is what runs as int8; onnxruntime.quantization is imported inside the functions.

TVM (Apache TVM 0.27, Relax ONNX frontend, observed 2026-12 on the test CNN of
``tests/kernels/test_quantize.py``, through :func:`kernels.tvm.build.compile_onnx`):
- It builds: ``import_onnx`` → ``default_schedule`` → ``tvm.compile`` in ~2.5-2.9 s, as long as the
  float net (~2.7 s).
- The graph computes in float. The imported Relax module has ``R.quantize``/``R.dequantize``
  (18 DQ, 8 Q) around float32 ``R.nn.conv2d`` (4) and ``R.matmul`` (1), ``out_dtype`` float32;
  the int8 weights are constants that are dequantized to float. No op takes int8 operands, so
  int8 only models the rounding ("fake quantization") and is no faster: 0.97 ms against 0.91 ms
  float at 1 thread (onnxruntime on the same file: 0.41 ms int8, 0.51 ms float; its optimised
  graph has QLinearConv/QGemm/QLinearAveragePool).
- Parity, 64 inputs, logits up to 1.36: TVM against onnxruntime int8 differs by at most 0.0115,
  exactly one step of the quantized output (scale 0.0115), with top-1 agreeing on every input;
  both differ from float by up to 0.081. With float scopes (``blocks.2.0``, ``classifier``; the
  output is then not re-quantized) TVM differs from onnxruntime's optimised int8 run by 0.088
  (top-1 97%), but from onnxruntime with graph optimisations off (Q/DQ executed as written) by only
  0.019: the difference comes from onnxruntime's fused int8 kernels, not from TVM.
- So the imported QDQ file has int8 *accuracy* but float *compute*. ``kernels.tvm.int8`` rewrites its
  convolutions and matmuls to integer compute (int32 accumulation), which ``make_runner("tvm", q)``
  builds; untuned, on AVX-512 VNNI, that build ran at 0.72-0.98x of the float one
  (``experiments/benchmarks/tvm_int8.py``).
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.errors import KernelError

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("uint8", "int8")
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")
CALIBRATION_BATCH = 64
_ORT_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class QuantRecipe:
    """How to quantize: weight scale granularity, activation symmetry, calibration method and the
    torch module paths (dotted, e.g. ``"blocks.3"``, ``"classifier"``) that stay float."""

    per_channel: bool = True
    activation_symmetric: bool = False
    method: str = "minmax"
    fp32_scopes: tuple[str, ...] = ()
    activation_type: str = "uint8"

    def __post_init__(self) -> None:
        if self.activation_type not in ACTIVATION_TYPES:
            raise ValueError(f"QuantRecipe.activation_type {self.activation_type!r} is not one of {list(ACTIVATION_TYPES)}")
        for name in ("per_channel", "activation_symmetric"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"QuantRecipe.{name} must be a bool, got {getattr(self, name)!r}")
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; expected one of {list(CALIBRATION_METHODS)}")
        scopes = self.fp32_scopes
        if isinstance(scopes, str) or not isinstance(scopes, (tuple, list)):
            raise ValueError(f"QuantRecipe.fp32_scopes must be a tuple of module paths, got {scopes!r}")
        for scope in scopes:
            _check_scope(scope)
        object.__setattr__(self, "fp32_scopes", tuple(scopes))


@dataclass(frozen=True)
class QuantizedOnnx:
    """A QDQ int8 ONNX model on disk that runners can run as is."""

    path: Path
    input_shape: tuple[int, ...]
    quantized_nodes: tuple[str, ...]
    float_nodes: tuple[str, ...]
    calibration_samples: int
    seconds: float
    cpu_isa: str

    def output_step(self) -> float:
        """The scale of the model's last QuantizeLinear: one step of its quantized output (how far apart
        two int8 runs of it may land, e.g. onnxruntime's fused kernels and TVM's integer compute)."""
        from onnx import numpy_helper

        graph = _load(self.path).graph
        inits = {t.name: t for t in graph.initializer}
        last = [n for n in graph.node if n.op_type == "QuantizeLinear"][-1]
        return float(numpy_helper.to_array(inits[last.input[1]]).reshape(-1)[0])


def _check_scope(scope) -> str:
    if not isinstance(scope, str) or not scope or "/" in scope or any(not atom for atom in scope.split(".")):
        raise ValueError(f"a scope is a dotted torch module path such as 'blocks.3', got {scope!r}")
    return scope


def _unqualified(qualified: str) -> str:
    atoms = qualified.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return qualified


def scope_prefix(scope: str) -> str:
    """The node-name prefix the TorchScript exporter gives the nodes of module ``scope``."""
    atoms = _check_scope(scope).split(".")
    levels = [_unqualified(".".join(atoms[: i + 1])) for i in range(len(atoms))]
    return "/" + "/".join(levels) + "/"


def _load(model):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load(str(model))
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"cannot read the ONNX model {str(model)!r}: {err}") from err


def nodes_in_scopes(model, scopes) -> dict[str, list[str]]:
    """``scope -> names of the nodes under it`` for an ONNX model (``ModelProto`` or path); a scope
    that matches no node raises :class:`KernelError` naming it."""
    if isinstance(scopes, str):
        scopes = (scopes,)
    graph = _load(model).graph
    found: dict[str, list[str]] = {}
    for scope in scopes:
        prefix = scope_prefix(scope)
        names = [node.name for node in graph.node if node.name.startswith(prefix)]
        if not names:
            raise KernelError(f"scope {scope!r} matches no node of the ONNX model (no name starts with {prefix!r}); "
                              "give a torch module path of the exported module, e.g. 'blocks.0'")
        found[scope] = names
    return found


def cpu_isa() -> str:
    """The best int8-relevant x86 ISA in ``/proc/cpuinfo``: ``avx512_vnni``, ``avx_vnni``, ``avx512``
    or ``avx2``; ``platform.machine()`` elsewhere (or when none of these is present)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        flags = []
    for flag, name in (("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"), ("avx512f", "avx512"),
                       ("avx2", "avx2")):
        if flag in flags:
            return name
    return platform.machine()


def _input_dims(model) -> tuple[str, list]:
    """The one graph input's name and dims (an int, or None where symbolic)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise KernelError(f"int8 quantization needs a model with one input, got {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def _check_calibration(calibration, dims: list) -> np.ndarray:
    """``calibration`` as contiguous float32, checked against the model's input dims."""
    try:
        array = np.ascontiguousarray(calibration, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise KernelError(f"calibration set is not a float array: {err}; give a float32 (N, C, H, W) array") from None
    if array.ndim == 0 or array.shape[0] == 0:
        raise KernelError("calibration set is empty: give at least one sample")
    if array.ndim != len(dims) or any(d is not None and d != n for d, n in zip(dims[1:], array.shape[1:])):
        want = tuple("N" if i == 0 else ("?" if d is None else d) for i, d in enumerate(dims))
        raise KernelError(f"calibration shape {tuple(array.shape)} does not fit the model input {want}: "
                          "give samples of the model's input shape")
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise KernelError(f"calibration set has {bad} non-finite values (NaN or inf): give finite inputs")
    if dims[0] is not None and array.shape[0] % dims[0]:
        raise KernelError(f"calibration set has {array.shape[0]} samples, not a multiple of the model's static "
                          f"batch {dims[0]}: give a multiple or export with a dynamic batch")
    return array


def _reader(name: str, array: np.ndarray, batch: int):
    from onnxruntime.quantization import CalibrationDataReader

    class _ArrayReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._start = 0

        def get_next(self):
            if self._start >= len(array):
                return None
            feed = {name: array[self._start:self._start + batch]}
            self._start += batch
            return feed

        def rewind(self) -> None:
            self._start = 0

    return _ArrayReader()


def _classify(model) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(int8, float) Conv/Gemm/MatMul node names: int8 when both data inputs are DequantizeLinear outputs."""
    dq_outputs = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    quantized, floats = [], []
    for node in model.graph.node:
        if node.op_type in QUANTIZABLE_OPS:
            (quantized if all(i in dq_outputs for i in node.input[:2]) else floats).append(node.name)
    return tuple(quantized), tuple(floats)


def _quantize(src: Path, work: Path, out_path: Path, array: np.ndarray, name: str, batch: int,
              recipe: QuantRecipe):
    """Pre-process ``src`` into ``work``, then ``quantize_static`` to a temporary file renamed over ``out_path``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = work / "preprocessed.onnx"
    try:
        quant_pre_process(str(src), str(pre))
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"int8 quantization failed at pre-processing (quant_pre_process): {_line(err)}") from err
    excluded = sorted({n for names in nodes_in_scopes(pre, recipe.fp32_scopes).values() for n in names})
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
        os.close(fd)
    except OSError as err:
        raise KernelError(f"int8 quantization cannot write in {str(out_path.parent)!r}: {err}") from err
    try:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the entropy/percentile calibrators print progress
                quantize_static(
                    str(pre), tmp, _reader(name, array, batch), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8 if recipe.activation_type == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=recipe.per_channel,
                    nodes_to_exclude=excluded, calibrate_method=getattr(CalibrationMethod, _ORT_METHODS[recipe.method]),
                    extra_options={"ActivationSymmetric": recipe.activation_symmetric, "WeightSymmetric": True})
        except Exception as err:  # noqa: BLE001
            raise KernelError(f"int8 quantization failed at quantize_static ({recipe.method} calibration): "
                              f"{_line(err)}") from err
        model = onnx.load(tmp)
        os.replace(tmp, out_path)
    except OSError as err:
        raise KernelError(f"int8 quantization failed at writing {str(out_path)!r}: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return model


def _line(err: BaseException) -> str:
    return f"{type(err).__name__}: " + (str(err).strip().splitlines() or [""])[0][:300]


def _check_out(out_path) -> Path:
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise KernelError(f"int8 quantization cannot write {str(out_path)!r}: its folder does not exist")
    return out_path


def quantize_onnx(float_path, out_path, calibration, recipe: QuantRecipe = QuantRecipe()) -> QuantizedOnnx:
    """Quantize the float ONNX model at ``float_path`` to a QDQ int8 model at ``out_path``, calibrated
    on ``calibration`` (float32 ``(N, C, H, W)``); see the module docstring."""
    start = time.perf_counter()
    if not isinstance(recipe, QuantRecipe):
        raise ValueError(f"recipe must be a QuantRecipe, got {recipe!r}")
    out_path = _check_out(out_path)
    name, dims = _input_dims(_load(float_path))
    array = _check_calibration(calibration, dims)
    batch = dims[0] or CALIBRATION_BATCH
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        model = _quantize(Path(float_path), Path(tmp), out_path, array, name, batch, recipe)
    quantized, floats = _classify(model)
    shape = tuple(d if d is not None else (1 if i == 0 else array.shape[i]) for i, d in enumerate(dims))
    return QuantizedOnnx(path=out_path, input_shape=shape, quantized_nodes=quantized, float_nodes=floats,
                         calibration_samples=int(array.shape[0]), seconds=time.perf_counter() - start,
                         cpu_isa=cpu_isa())


def quantize_module(module, example_input, out_path, calibration, recipe: QuantRecipe = QuantRecipe(), *,
                    dynamic_batch: bool = True, opset: int = 17) -> QuantizedOnnx:
    """Export ``module`` at the batch-1 ``example_input`` (torch tensor) and quantize it to ``out_path``
    (:func:`quantize_onnx`); ``seconds`` covers export and quantization."""
    from kernels.onnx_export import export_onnx

    start = time.perf_counter()
    if not isinstance(recipe, QuantRecipe):
        raise ValueError(f"recipe must be a QuantRecipe, got {recipe!r}")
    out_path = _check_out(out_path)
    _check_calibration(calibration, [None, *example_input.shape[1:]])  # fail before the export
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        float_path = export_onnx(module, example_input, Path(tmp) / "float.onnx", opset=opset,
                                 dynamic_batch=dynamic_batch)
        q = quantize_onnx(float_path, out_path, calibration, recipe)
    shape = (1, *q.input_shape[1:]) if dynamic_batch else q.input_shape
    return QuantizedOnnx(path=q.path, input_shape=tuple(shape), quantized_nodes=q.quantized_nodes,
                         float_nodes=q.float_nodes, calibration_samples=q.calibration_samples,
                         seconds=time.perf_counter() - start, cpu_isa=q.cpu_isa)


def run_batches(path, images, *, batch_size: int = 256, threads: int = 1) -> np.ndarray:
    """Logits of the ONNX file at ``path`` (float or QDQ) over float32 ``images`` ``(N, C, H, W)``,
    run with onnxruntime in batches of ``batch_size`` (the model's static batch, when it has one)."""
    from kernels.runners import ort_session

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    name, dims = _input_dims(_load(path))
    array = np.ascontiguousarray(images, dtype=np.float32)
    if array.ndim == 0 or array.shape[0] == 0:
        raise KernelError("no images to run: give at least one image")
    if array.ndim != len(dims) or any(d is not None and d != n for d, n in zip(dims[1:], array.shape[1:])):
        raise KernelError(f"images of shape {tuple(array.shape)} do not fit the model input {dims}")
    batch = dims[0] or batch_size
    if dims[0] is not None and array.shape[0] % batch:
        raise KernelError(f"{array.shape[0]} images are not a multiple of the model's static batch {batch}")
    session = ort_session(path, threads=threads, spin=False)
    try:
        outs = [session.run(None, {name: array[i:i + batch]})[0] for i in range(0, len(array), batch)]
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"onnxruntime run failed: {_line(err)}") from err
    return np.concatenate(outs, axis=0)

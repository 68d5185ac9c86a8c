"""The int8 step of ``nas export --quantize``: ``model.int8.onnx`` beside the float files, and its report section.

Contract:
- What gets quantized (:func:`quant_target`): the network part of the arch (``space.network(arch)`` of a
  ``<space>+q`` arch; the float files are that network's, unchanged) under a policy. ``"policy"`` takes the
  arch's own (an error for a plain arch or a policy that keeps every block fp32); ``"int8"`` puts every
  block in int8, keeping the arch's weight/activation schemes (else per-channel weights, asymmetric
  activations), and works for a plain arch too (``space.combine`` with the uniform int8 policy).
- :func:`export_int8` writes ``model.int8.onnx`` with ``kernels.quantize.quantize_module`` (QDQ, signed int8,
  dynamic batch; the policy's fp32 blocks excluded through ``supernet.block_scopes``), calibrated on
  ``samples`` training images of the checkpoint in a seeded order (``QuantizedEvaluator.calibration_images``)
  or, with random-init weights, on seeded random inputs. A quantization failure fails the export (the
  staged folder leaves nothing). Then it checks and measures the file (:class:`Int8Report`):
  - ``parity``: the file reloaded from the export folder in a fresh onnxruntime session against a second,
    independent quantization of the same module with the same recipe and calibration, written to a
    temporary folder only, on seeded batches of 1 and 3 (the file is what its recipe produces);
  - ``accuracy``: top-1 of the exported float module and of the int8 file on the checkpoint's validation
    split, their agreement and max logit difference, ``collapsed`` when int8 falls more than
    ``COLLAPSE_DROP`` below float (flagged, never hidden); every figure null, with the reason, for
    random-init weights (there is no labelled data: nothing is invented);
  - ``seeded_batch``: int8 vs float on seeded random inputs (agreement, max logit diff; not accuracy);
  - ``nodes`` (Conv/Gemm/MatMul in int8 and float), ``size_bytes`` (model.onnx, model.int8.onnx, ratio),
    ``cpu_isa`` (int8 latency depends on it);
  - ``latency_ms``: ``model.onnx`` and ``model.int8.onnx`` on onnxruntime taking turns
    (``kernels.timing.measure``, one warm call before each timed one, no spinning), on this host only;
  - ``tvm`` when the tvm format is exported: :func:`nas.export._int8_tvm.check_tvm_int8` on this host,
    else ``verified: false`` with the reason.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nas._results import OMIT_NONE, ReportRecord
from nas.export._common import FILES, PARITY_SEED, ExportError, parity, step_error, verified
from search_spaces import ArchConfig, QuantizedSpace, QuantPolicy, SearchSpace, quantized
from search_spaces.quantization import split_quantized_name

QUANTIZE_MODES = ("policy", "int8")
INT8_FILE = "model.int8.onnx"
CALIBRATION_SEED = 0  # the seeded random calibration inputs when there is no checkpoint
SEEDED_BATCH = 64  # seeded random inputs on which int8 and float are compared (random-init or not)
SEEDED_BATCH_SEED = 1


def check_quantize(mode: str | None, method: str, samples: int) -> None:
    """``ExportError`` (one line naming the flag) unless ``mode`` is None or in ``QUANTIZE_MODES`` and the
    calibration settings are valid (``nas.training.quantized.QuantSettings``)."""
    from nas.training.quantized import QuantizationError, QuantSettings

    if mode is not None and mode not in QUANTIZE_MODES:
        raise ExportError(f"--quantize {mode!r}: expected 'policy' (the arch's own quantization policy) or 'int8' "
                          "(every block in int8)")
    try:
        QuantSettings(method=method, samples=samples)
    except QuantizationError as err:
        flag = "--calibration-samples" if "samples" in str(err) else "--calibration-method"
        raise ExportError(f"{flag}: {err}") from None


def policy_needed_error(space_name: str | None) -> ExportError:
    """The one line for ``--quantize policy`` with an arch that has no policy (of ``space_name``, or of the
    checkpoint's space when None)."""
    base = (split_quantized_name(space_name) or (space_name, ()))[0] if space_name else "SPACE"
    where = f"of the plain space {space_name!r}" if space_name else "without q_<block> settings"
    return ExportError(f"--quantize policy needs an arch with a quantization policy, but the arch is {where}: export "
                       f"a trial of a {base}+q job, or give --space {base}+q and an --arch with q_<block> settings; "
                       "or use --quantize int8 to quantize every block")


@dataclass(frozen=True)
class QuantTarget:
    """The arch of an export split in two: ``network`` (of the supernet's space: what is extracted and
    exported in float) and, for a quantized space, ``qspace``/``qarch``/``policy``; ``mode`` is the
    ``--quantize`` value (None: no int8 file)."""

    network: ArchConfig
    qspace: QuantizedSpace | None = None
    qarch: ArchConfig | None = None
    mode: str | None = None

    @property
    def policy(self) -> QuantPolicy | None:
        return self.qspace.policy(self.qarch) if self.qspace is not None else None

    @property
    def arch(self) -> ArchConfig:
        """The arch the export records (arch.json, report.json): the quantized one when there is one."""
        return self.qarch if self.qarch is not None else self.network

    def space(self, base: SearchSpace) -> SearchSpace:
        return self.qspace if self.qspace is not None else base


def quantized_space_of(base: SearchSpace, name: str) -> QuantizedSpace | None:
    """``base`` with the policy of the space called ``name`` (``"tiny_mbv3+q"``), or None for a plain name;
    ``ExportError`` when ``name`` quantizes another space."""
    split = split_quantized_name(name)
    if split is None:
        return None
    if split[0] != base.name:
        raise ExportError(f"space {name!r} does not quantize the supernet's space {base.name!r}")
    return quantized(base, precisions=split[1])


def quant_target(space: SearchSpace, arch, mode: str | None) -> QuantTarget:
    """Split ``arch`` (of ``space`` or of ``space``'s ``+q`` space) and apply ``mode`` (module docstring)."""
    qspace = quantized_space_of(space, arch.space) if isinstance(arch, ArchConfig) else None
    if qspace is None:
        network, qarch = space.validate(arch), None
    else:
        qarch = qspace.validate(arch)
        network = qspace.network(qarch)
    if mode == "policy":
        if qarch is None:
            raise policy_needed_error(space.name)
        if qspace.policy(qarch).label == "fp32":
            raise ExportError(f"--quantize policy: the policy of arch {qarch.arch_id} keeps every block in fp32, so "
                              "nothing would be quantized; export without --quantize, or use --quantize int8")
    elif mode == "int8":
        qspace = qspace or quantized(space)
        scheme = {}
        if qarch is not None:
            own = qspace.policy(qarch)
            scheme = {"weight_granularity": own.weight_granularity, "activation_scheme": own.activation_scheme}
        qarch = qspace.combine(network, QuantPolicy.uniform(qspace.labels, "int8", **scheme))
    return QuantTarget(network=network, qspace=qspace, qarch=qarch, mode=mode)


@dataclass(frozen=True, kw_only=True)
class Int8Report(ReportRecord):
    """``report.json``'s ``int8`` section (module docstring); nested values are plain JSON dicts."""

    _ERROR = ExportError

    file: str
    sha256: str
    verified: bool
    quantize: str
    space: str
    arch_id: str
    network_arch_id: str
    policy: dict
    calibration: dict
    recipe: dict
    accuracy: dict
    seeded_batch: dict
    parity: dict
    nodes: dict
    size_bytes: dict
    cpu_isa: str
    quantize_s: float
    latency_ms: dict | None = field(default=None, metadata=OMIT_NONE)
    latency_note: str | None = field(default=None, metadata=OMIT_NONE)
    tvm: dict | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class _Calibration:
    """The calibration array, what it is (for the report) and the settings that made it."""

    images: np.ndarray
    source: str
    method: str
    samples: int


def _calibration(evaluator, target: QuantTarget, shape: tuple[int, ...], method: str, samples: int) -> _Calibration:
    """``samples`` training images of the checkpoint (seeded order), or seeded random inputs without one."""
    if evaluator is None:
        images = np.random.default_rng(CALIBRATION_SEED).standard_normal((samples, *shape[1:]), dtype=np.float32)
        return _Calibration(images, f"seeded random inputs (numpy default_rng({CALIBRATION_SEED}).standard_normal; "
                                    "random-init weights, no checkpoint)", method, samples)
    from nas.training.quantized import QuantizedEvaluator, QuantSettings

    qeval = QuantizedEvaluator(evaluator, target.qspace, QuantSettings(method=method, samples=samples))
    images = qeval.calibration_images(shape[-1])
    return _Calibration(images, f"the checkpoint's training split ({evaluator.data}), seeded order "
                                f"(seed {evaluator.config.seed}), not augmented", method, samples)


def _recipe(supernet, target: QuantTarget, method: str):
    """The ``QuantRecipe`` of the target's policy: its fp32 blocks' module paths stay float."""
    from nas.profiling.builds import recipe_for

    return recipe_for(supernet, target.network, target.policy, method)


def _seeded(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    import torch

    return torch.randn((n, *shape[1:]), generator=torch.Generator().manual_seed(seed)).numpy()


def _float_logits(module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.concatenate([module(torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))).numpy()
                               for i in range(0, len(images), batch)])


def _reproduced(subnet, q, calibration: _Calibration, recipe, runner) -> dict:
    """Parity of the reloaded file (``runner``) with a second quantization of the same module, recipe and
    calibration in a temporary folder, on seeded batches of 1 and 3 (tolerance as for every format)."""
    from kernels.quantize import quantize_module, run_batches

    x1, x3 = subnet.x.numpy(), _seeded(subnet.input_shape, 3, PARITY_SEED + 1)
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp:
        again = quantize_module(subnet.module, subnet.x, Path(tmp) / INT8_FILE, calibration.images, recipe)
        ref1, ref3 = run_batches(again.path, x1), run_batches(again.path, x3)
    label = "int8 ONNX (onnxruntime)"
    return {**verified(label, ref1, runner.run(x1)), "batch3": verified(f"{label} batch 3", ref3, runner.run(x3)),
            "against": "an independent quantization of the same module, recipe and calibration (not kept)",
            "runtime": "onnxruntime", "reloaded": True}


def _agreement(reference: np.ndarray, got: np.ndarray) -> dict:
    return {"agreement": float((reference.argmax(1) == got.argmax(1)).mean()),
            "max_logit_diff": float(np.abs(reference.astype(np.float64) - got).max()),
            "output_max_abs": float(np.abs(reference).max())}


def _seeded_batch(subnet, runner) -> dict:
    """int8 (``runner``) vs the float module on ``SEEDED_BATCH`` seeded random inputs."""
    x = _seeded(subnet.input_shape, SEEDED_BATCH, SEEDED_BATCH_SEED)
    return {"inputs": f"{SEEDED_BATCH} torch.randn seeded {SEEDED_BATCH_SEED} (not accuracy: no labels)",
            "n": SEEDED_BATCH, **_agreement(_float_logits(subnet.module, x), runner.run(x))}


def _accuracy(evaluator, subnet, path: Path) -> dict:
    """Float vs int8 top-1 on the checkpoint's validation split; null figures with the reason without one."""
    from nas.training.quantized import COLLAPSE_DROP

    if evaluator is None:
        return {"float_top1": None, "int8_top1": None, "drop": None, "n": None, "agreement": None,
                "max_logit_diff": None, "collapsed": None,
                "reason": "not available: random-init weights (no --checkpoint), so there is no validation split to "
                          "measure top-1 on; see seeded_batch for int8 vs float on seeded random inputs"}
    from kernels.quantize import run_batches

    images, labels = evaluator.validation_arrays(subnet.input_shape[-1])
    float_logits = _float_logits(subnet.module, images)
    int8_logits = run_batches(path, images, batch_size=256)
    if not np.isfinite(int8_logits).all():
        raise ExportError(f"int8 evaluation failed: {INT8_FILE} gave non-finite logits on the validation split")
    float_top1 = float((float_logits.argmax(1) == labels).mean())
    int8_top1 = float((int8_logits.argmax(1) == labels).mean())
    figures = _agreement(float_logits, int8_logits)
    return {"split": "validation", "data": evaluator.data, "n": int(len(labels)), "float_top1": float_top1,
            "int8_top1": int8_top1, "drop": float_top1 - int8_top1, "agreement": figures["agreement"],
            "max_logit_diff": figures["max_logit_diff"], "collapsed": float_top1 - int8_top1 > COLLAPSE_DROP,
            "collapse_drop": COLLAPSE_DROP}


def _time_int8(float_runner, int8_runner, *, warmup: int, repeats: int, device, precision: str) -> dict:
    """``model.onnx`` and ``model.int8.onnx`` on onnxruntime, taking turns: measured ``Metric`` dicts."""
    from hw_profiles.metric import Metric
    from kernels.timing import measure

    try:
        timings = measure({"onnx": float_runner, "int8": int8_runner}, warmup=warmup, repeats=repeats,
                          threads=device.threads, warm_calls=1)
    except Exception as err:  # noqa: BLE001
        raise step_error("int8 latency measurement", err) from err
    figures = {name: Metric(value=t.median_ms, unit="ms", source="measured", profile=device.profile.ref,
                            spread=t.iqr_ms, precision="fp32" if name == "onnx" else precision).to_dict()
               for name, t in timings.items()}
    return {**figures, "speedup": timings["onnx"].median_s / timings["int8"].median_s,
            "backend": "onnxruntime", "protocol": "interleaved (kernels.timing.measure, one warm call before each "
                                                  "timed call), idle threads not spinning"}


def _sizes(folder: Path) -> dict:
    float_bytes = (folder / FILES["onnx"]).stat().st_size
    int8_bytes = (folder / INT8_FILE).stat().st_size
    return {"float": float_bytes, "int8": int8_bytes, "ratio": int8_bytes / float_bytes}


def _write(subnet, folder: Path, calibration: _Calibration, recipe):
    """``model.int8.onnx`` in the export folder: the ``QuantizedOnnx``; a failure names the step."""
    from kernels.quantize import quantize_module

    try:
        return quantize_module(subnet.module, subnet.x, folder / INT8_FILE, calibration.images, recipe)
    except Exception as err:  # noqa: BLE001
        raise step_error("int8 quantization", err) from err


def export_int8(subnet, folder: Path, *, supernet, target: QuantTarget, options, device, runners: dict,
                evaluator=None, log: Callable[[str], None] = lambda msg: None, space=None) -> Int8Report:
    """Write ``model.int8.onnx`` into ``folder`` (beside ``model.onnx``), check and measure it (module docstring).
    ``runners`` are the float formats' runners of the reloaded files (this host only); ``space`` (the
    exported network's) names the tuning database the int8 TVM build's own one sits in."""
    from kernels.runners import OrtFileRunner
    from supernets.checkpoint import file_sha256

    shape = subnet.input_shape
    calibration = _calibration(evaluator, target, shape, options.calibration_method, options.calibration_samples)
    recipe = _recipe(supernet, target, options.calibration_method)
    log(f"quantizing to int8 ({target.policy.label} policy, {options.calibration_method} calibration)")
    q = _write(subnet, folder, calibration, recipe)
    runner = OrtFileRunner(folder / INT8_FILE, subnet.x.numpy(), threads=device.threads, spin=False)
    try:
        checked = _reproduced(subnet, q, calibration, recipe, runner)
        log("evaluating int8 against float")
        accuracy, seeded = _accuracy(evaluator, subnet, q.path), _seeded_batch(subnet, runner)
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001
        raise step_error("int8 check", err) from err
    latency = note = tvm = None
    if device.on_host and "onnx" in runners:
        latency = _time_int8(runners["onnx"], runner, warmup=options.warmup, repeats=options.repeats,
                             device=device, precision=target.policy.label)
    else:
        note = f"not timed: {device.profile.ref} is not this host"
    if "tvm" in options.formats:
        from nas.export._int8_tvm import tvm_entry

        tvm = tvm_entry(q, subnet.x.numpy(), ort_int8=runner, float_tvm=runners.get("tvm"), options=options,
                        device=device, space=space, precision=target.policy.label, log=log)
    return Int8Report(
        file=INT8_FILE, sha256=file_sha256(q.path), quantize=target.mode, space=target.qspace.name,
        arch_id=target.qarch.arch_id, network_arch_id=target.network.arch_id, policy=target.policy.to_dict(),
        calibration={"method": calibration.method, "samples": q.calibration_samples, "requested": calibration.samples,
                     "source": calibration.source},
        recipe={"format": "QDQ (onnxruntime quantize_static), dynamic batch", "per_channel": recipe.per_channel,
                "activation_symmetric": recipe.activation_symmetric,
                "activation_type": recipe.activation_type, "weight_type": "int8",
                "fp32_scopes": list(recipe.fp32_scopes)},
        accuracy=accuracy, seeded_batch=seeded, parity=checked,
        nodes={"quantized": len(q.quantized_nodes), "float": len(q.float_nodes), "float_names": list(q.float_nodes)},
        size_bytes=_sizes(folder), cpu_isa=q.cpu_isa, quantize_s=round(q.seconds, 3), latency_ms=latency,
        latency_note=note, tvm=tvm, verified=True)


def mcu_policy(target: QuantTarget, int8: Int8Report | None) -> dict:
    """What an MCU build's entry carries about the int8 policy: the TVM C source is the float network."""
    return {"policy": target.policy.to_dict(), "arch_id": target.qarch.arch_id,
            "int8_file": int8.file if int8 is not None else None,
            "note": ("the C source computes the float network (TVM 0.27 lowers Q/DQ to float and has no int8 MCU "
                     "path); the estimated flash/SRAM follow this policy; deploy it through an int8 toolchain from "
                     + (f"{int8.file} (its scales and zero points)" if int8 is not None
                        else "`nas export --quantize policy`"))}


def summary_lines(int8: Int8Report) -> list[str]:
    """The int8 lines of ``nas export``'s printed summary."""
    policy, acc, sizes = int8.policy, int8.accuracy, int8.size_bytes
    lines = [f"int8    {int8.file:<22}{policy['format']} policy ({int8.quantize}), {int8.nodes['quantized']} int8 / "
             f"{int8.nodes['float']} float ops, {int8.calibration['method']} on {int8.calibration['samples']} "
             f"samples; parity {int8.parity['max_abs_diff']:.3g}",
             f"        size {sizes['int8'] / 1e3:.1f} kB vs {sizes['float'] / 1e3:.1f} kB float "
             f"({sizes['ratio']:.2f}x)"]
    if int8.latency_ms is not None:
        lat = int8.latency_ms
        lines.append(f"        onnxruntime {lat['int8']['value']:.3g} ms int8 vs {lat['onnx']['value']:.3g} ms float "
                     f"(taking turns, {lat['speedup']:.2f}x, {int8.cpu_isa})")
    elif int8.latency_note:
        lines.append(f"        latency {int8.latency_note}")
    if acc.get("int8_top1") is not None:
        lines.append(f"        top-1 int8 {acc['int8_top1']:.4f} vs float {acc['float_top1']:.4f} on {acc['n']} "
                     f"{acc['split']} images; agreement {acc['agreement']:.3f}, max logit diff "
                     f"{acc['max_logit_diff']:.3g}")
        if acc["collapsed"]:
            lines.append(f"        WARNING: int8 accuracy collapsed (drop {acc['drop']:.3f} > {acc['collapse_drop']})")
    else:
        lines.append(f"        top-1: {acc['reason']}")
    seeded = int8.seeded_batch
    lines.append(f"        vs float on {seeded['n']} seeded random inputs: agreement {seeded['agreement']:.3f}, "
                 f"max logit diff {seeded['max_logit_diff']:.3g}")
    if int8.tvm is not None:
        lines.append("        tvm: " + _tvm_line(int8.tvm))
    return lines


def _tvm_line(tvm: dict) -> str:
    if not tvm.get("verified"):
        return f"not verified: {tvm.get('reason')}"
    p = tvm["parity"]
    vnni = tvm.get("vnni_pointwise_functions")
    on_vnni = f" ({vnni} pointwise convs on AVX-512 VNNI)" if isinstance(vnni, int) and vnni > 0 else ""
    selection = (tvm.get("tuning") or {}).get("selection") or {}
    timed = (f" (tuned {selection['tuned_ms']['median']:.3g} ms, default {selection['default_ms']['median']:.3g} ms)"
             if selection.get("tuned_ms") and selection.get("default_ms") else "")
    return (f"computes in {tvm['computes_in']}{on_vnni}; schedule {tvm.get('tvm_schedule', 'default')}{timed}; "
            f"vs onnxruntime int8: max abs diff {p['max_abs_diff']:.3g}, agreement {p['agreement']:.3f} on {p['n']} "
            "inputs")


def as_int8_report(value: Any) -> Int8Report | None:
    """``report.json``'s ``int8`` value as an :class:`Int8Report` (a dict is read with its schema)."""
    if value is None or isinstance(value, Int8Report):
        return value
    return Int8Report.from_json(value)

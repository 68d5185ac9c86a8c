"""What a measured latency runs: the float module, or a quantized arch's or row's int8 ONNX model.

Contract: ``network_builder(supernet, space)`` is the build function of a measured cost model for
``space``'s archs: ``supernet.extract`` for a plain space; for a space with a quantization policy
(``"<space>+q"``) the extracted network when its policy is all ``fp32``, else its QDQ ONNX model
(``kernels.quantize.QuantizedOnnx``: the arch's weight granularity and activation scheme, its
``fp32`` blocks kept float by module scope). ``layer_build(spec)`` builds one ``LayerSpec`` row as a
standalone module (``supernets.layer_module``), quantized the same way when ``spec.precision`` is
``int8``. Calibration uses ``CALIBRATION_SAMPLES`` seeded random inputs: latency does not depend on
it. Files go to one temporary folder per builder, removed when the builder is garbage-collected or
at exit.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Callable

import numpy as np

from search_spaces import ArchConfig, LayerSpec, NASError, QuantizedSpace, SearchSpace

CALIBRATION_SAMPLES = 8
KEEP_BUILT = 64  # QDQ files kept per builder: more than one interleaved chunk (nas profile builds a chunk of
# 20 before timing it), fewer than a long search would leave (an ofa_mbv3 file is a few MB)


class QuantizedBackendError(NASError, ValueError):
    """A quantized space was to be measured on a backend that cannot run int8."""


def scratch_folder(owner) -> Path:
    """A temporary folder removed when ``owner`` is garbage-collected (or at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="hwnas-int8-"))
    weakref.finalize(owner, shutil.rmtree, folder, ignore_errors=True)
    return folder


def _quantized(module, input_shape: tuple[int, ...], path: Path, recipe):
    import torch

    from kernels.quantize import quantize_module

    calibration = np.random.default_rng(0).standard_normal((CALIBRATION_SAMPLES, *input_shape[1:]))
    return quantize_module(module, torch.zeros(input_shape), path, calibration.astype(np.float32), recipe)


def recipe_for(supernet, network: ArchConfig, policy, method: str = "minmax"):
    """The ``kernels.quantize.QuantRecipe`` of ``policy`` on ``network`` (a base arch of ``supernet``):
    its scheme settings, and the module paths of its fp32 blocks kept float."""
    from kernels.quantize import QuantRecipe

    scopes = supernet.block_scopes(network)
    return QuantRecipe(per_channel=policy.per_channel, activation_symmetric=policy.activation_symmetric,
                       method=method, fp32_scopes=tuple(p for label in policy.blocks_in("fp32") for p in scopes[label]))


def network_builder(supernet, space: SearchSpace) -> Callable[[ArchConfig], object]:
    """The build function of a measured latency for ``space``'s archs (see the module docstring)."""
    if not isinstance(space, QuantizedSpace):
        return supernet.extract
    built: dict[str, object] = {}

    def build(arch: ArchConfig):
        arch = space.validate(arch)
        network, policy = space.network(arch), space.policy(arch)
        if policy.label == "fp32":
            return supernet.extract(network)
        if arch.arch_id not in built or not built[arch.arch_id].path.exists():
            recipe = recipe_for(supernet, network, policy)
            built[arch.arch_id] = _quantized(supernet.extract(network), (1, *space.input_shape(arch)),
                                             folder / f"{arch.arch_id}.onnx", recipe)
            while len(built) > KEEP_BUILT:  # oldest first: bounded disk over a long search
                built.pop(next(iter(built))).path.unlink(missing_ok=True)
        return built[arch.arch_id]

    folder = scratch_folder(build)
    return build


def labelled(metrics: dict, space: SearchSpace, arch: ArchConfig) -> dict:
    """Measured ``metrics`` of ``arch`` tagged with the numeric format of the network that ran
    (``fp32`` unless ``space``'s policy quantized it)."""
    from dataclasses import replace

    label = space.policy(arch).label if isinstance(space, QuantizedSpace) else "fp32"
    return {name: replace(m, precision=label) for name, m in metrics.items()}


def measured_for(space: SearchSpace, model_factory, profile, **kwargs):
    """``model_factory(profile, build=, input_shape=, **kwargs)`` (a measured cost model) over a fresh
    seed-0 supernet of ``space``'s network (weights do not change latency)."""
    from supernets import create_supernet

    network = space.base if isinstance(space, QuantizedSpace) else space
    supernet = create_supernet(network.name, num_classes=space.num_classes, in_channels=space.in_channels, seed=0)
    model = model_factory(profile, build=network_builder(supernet, space),
                          input_shape=lambda a: (1, *space.input_shape(a)), **kwargs)
    check_backend(space, model.backend, profile.ref)
    return model


def check_backend(space: SearchSpace, backend: str, where: str) -> None:
    """``QuantizationError`` when a quantized space would be measured with TVM: its int8 build (integer
    convolutions, ``kernels.tvm.int8``) has no space tuning database (an int8 task carries its file's
    quantization scales, ``nas.export._int8_tvm``), so a search would time untuned builds beside tuned
    float ones; int8 is tuned per file at export."""
    if isinstance(space, QuantizedSpace) and backend.startswith("tvm"):
        raise QuantizedBackendError(
            f"{where}: space {space.name!r} is measured with onnxruntime only: TVM's int8 (QDQ) builds have no "
            "space tuning database (they are tuned per file by nas export --quantize --tune-minutes); use "
            "latency_ms with backend onnxruntime")


def layer_build(spec: LayerSpec, folder: Path) -> tuple[object, tuple[int, ...]]:
    """``(module or QuantizedOnnx, input shape)`` of one row; int8 rows are quantized into ``folder``."""
    from supernets.layer_module import layer_input_shape, layer_module

    module, shape = layer_module(spec), layer_input_shape(spec)
    if spec.precision != "int8":
        return module, shape
    from kernels.quantize import QuantRecipe

    name = f"layer-{abs(hash(spec)) & 0xFFFFFFFFFFFF:x}.onnx"
    return _quantized(module, shape, folder / name, QuantRecipe()), shape


"""Fixtures shared by the kernels tests."""

from __future__ import annotations

import pytest

from search_spaces import get_space
from supernets import create_supernet
from supernets.testing import enliven


@pytest.fixture(scope="module")
def subnet():
    """An enlivened tiny_mbv3 largest subnet (outputs with signal) and its batch-1 input shape."""
    space = get_space("tiny_mbv3")
    arch = space.largest()
    supernet = create_supernet("tiny_mbv3", seed=0)
    enliven(supernet, arch, seed=3)
    return supernet.extract(arch).eval(), (1, *space.input_shape(arch))


def _layers_model(specs, work) -> dict:
    """The layers of ``specs`` in sequence as ONNX in ``work``, imported into Relax: path, mod (Relax), host
    target (2 threads), merged TVM tasks, a seeded input ``x`` and the torch ``ref`` output."""
    import torch

    from kernels.onnx_export import export_onnx
    from kernels.tvm import build as tvm_build, db as tvm_db
    from kernels.tvm.schedule import legalize
    from supernets.layer_module import layer_input_shape, layer_module

    module = torch.nn.Sequential(*(layer_module(s) for s in specs)).eval()
    x = torch.randn(layer_input_shape(specs[0]), generator=torch.Generator().manual_seed(0))
    path = export_onnx(module, x, work / "m.onnx")
    target = tvm_build.host_target(2)
    mod = tvm_build.import_onnx(path)
    tasks = tvm_db.merge_tasks(tvm_db.extract_tasks(legalize(mod, target), target))
    with torch.no_grad():
        reference = module(x).numpy()
    return {"path": path, "mod": mod, "target": target, "tasks": tasks, "x": x.numpy(), "ref": reference, "work": work}


@pytest.fixture(scope="session")
def layers_model():
    """``layers_model(specs, work)``: see ``_layers_model``."""
    return _layers_model

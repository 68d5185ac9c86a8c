"""The CUDA path: measured latency on the local GPU beside the roofline estimate; clean skips without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw_profiles import get_profile
from hw_profiles.measured import CudaMeasuredCostModel, MeasurementRequiredError, gpu_unavailable_reason
from kernels import KernelError
from kernels.cuda import CudaTorchRunner, cuda_device_name, cuda_unavailable_reason
from nas.report.describe import describe_arch
from search_spaces import get_space

GPU_PROFILES = ("a100", "h100", "rtx-4090")


def _local_profile():
    for name in GPU_PROFILES:
        if gpu_unavailable_reason(get_profile(name)) is None:
            return get_profile(name)
    return None


def test_without_the_card_gpu_profiles_are_estimated_and_say_why():
    space = get_space("tiny_mbv3")
    arch = space.largest()
    for name in GPU_PROFILES:
        profile = get_profile(name)
        reason = gpu_unavailable_reason(profile)
        if reason is None:
            continue  # this machine has the card: the gpu-marked tests cover it
        assert reason and ("GPU" in reason or "CUDA" in reason or "not " + name in reason)
        with pytest.raises(MeasurementRequiredError, match="roofline-estimated instead"):
            CudaMeasuredCostModel(profile, build=lambda a: None, input_shape=lambda a: (1, 1, 32, 32))
        metrics = describe_arch(space, arch, devices=[name])["devices"][name]
        assert metrics["latency_ms"]["source"] == "estimated" and "roofline_latency_ms" not in metrics


def test_cuda_runner_refuses_cleanly_without_a_gpu():
    if cuda_unavailable_reason() is None:
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(KernelError, match="needs a CUDA GPU"):
        CudaTorchRunner(torch.nn.Identity(), torch.zeros(1))
    assert cuda_device_name() is None


def _lively_subnet(supernet_cache, seed: int):
    """The largest tiny_mbv3 subnet with Kaiming weights and random BN statistics, and an input."""
    from supernets.testing import enliven

    supernet = supernet_cache("tiny_mbv3")
    arch = supernet.space.largest()
    enliven(supernet, arch, seed=seed)
    return supernet.extract(arch), torch.randn(1, *supernet.space.input_shape(arch))


@pytest.mark.gpu
def test_cuda_runner_matches_cpu_torch(supernet_cache):
    module, x = _lively_subnet(supernet_cache, seed=1)
    runner = CudaTorchRunner(module, x, dtype="fp32")
    ref = module(x).detach().numpy()
    np.testing.assert_allclose(runner.run(x.numpy()), ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


@pytest.mark.gpu
def test_describe_measures_on_the_local_card_beside_the_roofline():
    profile = _local_profile()
    if profile is None:
        pytest.skip(f"the local GPU ({cuda_device_name()}) matches none of {GPU_PROFILES}")
    space = get_space("ofa_mbv3")
    metrics = describe_arch(space, space.smallest(), devices=[profile.name])["devices"][profile.name]
    assert metrics["latency_ms"]["source"] == "measured" and metrics["latency_ms"]["spread"] is not None
    assert metrics["roofline_latency_ms"]["source"] == "estimated"
    assert metrics["latency_ms"]["value"] > 0


@pytest.mark.gpu
def test_cuda_graph_replay_gives_the_eager_output_faster_or_equal(supernet_cache):
    if cuda_unavailable_reason() is not None:
        pytest.skip(cuda_unavailable_reason())
    from kernels.timing import measure

    module, x = _lively_subnet(supernet_cache, seed=2)
    eager = CudaTorchRunner(module, x, dtype="fp32")
    graph = CudaTorchRunner(module, x, dtype="fp32", graph=True)
    assert graph.backend == "torch-cuda-graph" and eager.backend == "torch-cuda"
    np.testing.assert_allclose(graph().float().cpu().numpy(), eager().float().cpu().numpy(), rtol=1e-5, atol=1e-5)
    timings = measure({"eager": eager, "graph": graph}, warmup=5, repeats=30, threads=1)
    assert timings["graph"].median_s <= timings["eager"].median_s * 1.1

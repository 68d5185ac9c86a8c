"""The TVM target of a device profile, and the RPC endpoint of a remote board.

Contract: :func:`tvm_target_spec` maps a profile to :class:`kernels.tvm.targets.TargetSpec`:
a ``cpu`` profile to ``llvm`` (this host, or the board its ``mtriple``/``mcpu``/``mattr`` name),
a ``gpu`` profile to ``cuda`` at its ``cuda_arch``, an ``mcu`` profile to ``c`` (C source for the
vendor toolchain: TVM 0.27 has no microTVM, AOT or CRT any more). An ``fpga`` profile has no TVM
target (its model is analytic): :class:`NoTvmTargetError`. :func:`rpc_endpoint` is the profile's
tracker and key (``tracker`` overrides the profile's ``rpc_tracker``), or None for a profile
measured on this host. Importing this module does not import TVM.
"""

from __future__ import annotations

import os

from hw_profiles.profile import Profile, ProfileError
from search_spaces import NASError


class NoTvmTargetError(NASError, ValueError):
    """The profile's device has no TVM target."""


def tvm_target_spec(profile: Profile, *, threads: int | None = None):
    """The :class:`kernels.tvm.targets.TargetSpec` of ``profile`` (module docstring)."""
    from kernels.tvm.targets import TargetSpec

    spec = profile.spec
    if profile.kind == "cpu":
        count = threads or spec.threads or (1 if spec.mtriple else os.cpu_count() or 1)
        mattr = tuple(a.strip() for a in spec.mattr.split(",") if a.strip())
        return TargetSpec("llvm", threads=count, mtriple=spec.mtriple, mcpu=spec.mcpu, mattr=mattr,
                          cross_compiler=spec.cross_compiler)
    if profile.kind == "gpu":
        if not spec.cuda_arch:
            raise ProfileError(f"{profile.ref}: [gpu] cuda_arch (e.g. 'sm_80') is needed for a TVM CUDA build")
        return TargetSpec("cuda", threads=threads or 1, arch=spec.cuda_arch)
    if profile.kind == "mcu":
        return TargetSpec("c", threads=1)
    raise NoTvmTargetError(f"{profile.ref} is an {profile.kind} profile (an analytic accelerator model): it has no "
                           "TVM target; pick a cpu, gpu or mcu profile")


def rpc_endpoint(profile: Profile, *, tracker: str | None = None):
    """The :class:`kernels.tvm.measure.RpcEndpoint` of a board measured over RPC, else None."""
    if profile.kind != "cpu" or not profile.spec.rpc_key:
        return None
    from kernels import KernelError
    from kernels.tvm.measure import RpcEndpoint

    try:
        return RpcEndpoint.parse(tracker or os.environ.get("HWNAS_RPC_TRACKER") or profile.spec.rpc_tracker,
                                 profile.spec.rpc_key)
    except KernelError as err:  # a setting, not a failure on the device: one line, exit code 2
        raise ProfileError(f"{profile.ref}: {err}") from None

"""Device profiles: versioned TOML data (``hw_profiles/profiles/*.toml``) and their schema.

A profile file has top-level ``name``, ``version``, ``kind`` (cpu | gpu | mcu | fpga),
``description``, one table named after its kind holding that kind's spec, and a ``[sources]``
table saying where each coefficient comes from. A file that breaks the schema gets a one-line
``ProfileError`` naming the file, the key and the expected type.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Union

from search_spaces import NASError, UnknownNameError

PROFILE_DIR = Path(__file__).parent / "profiles"


class ProfileError(NASError, ValueError):
    """A profile file is missing, unreadable or breaks the schema."""


class UnknownProfileError(UnknownNameError):
    """No profile with that name; the message lists the known ones."""


@dataclass(frozen=True)
class CpuSpec:
    """A CPU measured through ``kernels`` (onnxruntime by default, or tvm or torch)."""

    backend: str = "onnxruntime"
    threads: int = 0  # 0: every core
    target: str = "llvm"  # TVM target kind for builds on this CPU
    # A board other than this host: LLVM triple/CPU/features for TVM cross builds (empty: this host),
    # the compiler that links its .so (empty: object files in a .tar), and the TVM RPC tracker key
    # it registers under (empty: measured on this host). The tracker is HOST:PORT.
    mtriple: str = ""
    mcpu: str = ""
    mattr: str = ""  # comma-separated, e.g. "+neon"
    cross_compiler: str = ""
    rpc_key: str = ""
    rpc_tracker: str = "127.0.0.1:9190"


@dataclass(frozen=True)
class GpuSpec:
    """Roofline coefficients; measured with CUDA where the GPU is present."""

    peak_flops: Mapping[str, float]  # per precision: "fp32", "fp16", "int8" (FLOP/s, MAC = 2 FLOP)
    memory_bandwidth_bytes_per_s: float
    launch_overhead_s: float  # per kernel
    compute_efficiency: float  # fraction of peak a conv kernel reaches (effective peak)
    memory_efficiency: float  # fraction of peak bandwidth reached
    default_precision: str = "fp16"
    cuda_name: str = ""  # measured when torch.cuda.get_device_name() contains this (e.g. "A100")
    cuda_arch: str = ""  # CUDA compute capability for TVM builds, e.g. "sm_80"


MCU_OP_KINDS = ("conv", "pwconv", "dwconv", "linear")
"""The op kinds an MCU profile gives MAC rates for (``gap`` has no MACs)."""

FLOAT_MAC_RATIO = 0.5
"""Default fp32 MAC rate of an MCU op kind as a fraction of its int8 rate, for a profile that sets
no ``float_macs_per_cycle`` for it. Basis (an estimate, not measured): on a Cortex-M4/M7 the int8
kernels of CMSIS-NN (Lai, Suda, Chandra 2018, arXiv:1801.06601) and TinyEngine widen int8 pairs to
int16 (SXTB16) and issue SMLAD, a dual 16-bit multiply-accumulate per instruction (2 MACs), while
the single-precision FPU has no SIMD: VFMA.F32/VMLA.F32 is one MAC per instruction at best one per
cycle (Arm Cortex-M7 Technical Reference Manual, DDI 0489, FPU instruction timing; Arm white paper
"The DSP capabilities of Arm Cortex-M4 and Cortex-M7 Processors", T. Lorenser, 2016: single-cycle
MAC for 32-bit float, dual 16-bit MAC with SMLAD). fp32 operands are also 4x the bytes to load per
MAC (the M7 dual-issues one 32-bit load beside an FPU op). Hence ~1 float MAC per cycle against ~2
int8 MACs per cycle in the inner loops: half the rate, applied to the calibrated int8 rates."""


@dataclass(frozen=True)
class McuSpec:
    """A microcontroller running int8 kernels (CMSIS-NN-like), and fp32 rows of a mixed-precision
    network on its FPU. Units: Hz, bytes, cycles; every op kind's rate must be positive (SE's 1x1
    convs run at the ``linear`` rate). ``float_macs_per_cycle`` (optional, per op kind of
    ``MCU_OP_KINDS``, each > 0) is the fp32 rate; an op kind it leaves out runs at
    ``FLOAT_MAC_RATIO`` times its int8 rate. ``hw_profiles.mcu``."""

    core: str
    clock_hz: float
    sram_bytes: int
    flash_bytes: int
    macs_per_cycle: Mapping[str, float]  # per op kind: conv, pwconv, dwconv, linear
    runtime_flash_bytes: int  # inference runtime + kernels + graph, besides the weights
    runtime_sram_bytes: int  # stack, runtime state, scratch buffers, besides activations
    per_layer_overhead_cycles: float
    elementwise_cycles_per_element: float  # pooling, residual adds, SE scaling
    float_macs_per_cycle: Mapping[str, float] | None = None  # fp32 rows; None: FLOAT_MAC_RATIO x int8

    def float_rate(self, op: str) -> float:
        """MACs per cycle of an fp32 row of op kind ``op``."""
        rates = self.float_macs_per_cycle
        if rates is not None and op in rates:
            return rates[op]
        return self.macs_per_cycle[op] * FLOAT_MAC_RATIO


@dataclass(frozen=True)
class FpgaSpec:
    """An accelerator template on an FPGA: the explicit parameters co-exploration will search."""

    device: str
    dsp_total: int
    bram18k_total: int
    pe_rows: int  # parallel output channels
    pe_cols: int  # parallel input channels (or kernel taps for depthwise)
    bit_width: int  # bits per weight and activation element (8: int8)
    clock_hz: float
    ddr_bandwidth_bytes_per_s: float  # effective (sustained) off-chip bandwidth, not the peak
    input_buffer_bytes: int
    weight_buffer_bytes: int
    output_buffer_bytes: int
    macs_per_dsp: int  # int8 packs 2 MACs in one DSP48E2
    per_layer_overhead_cycles: float
    energy_pj_per_mac: float
    energy_pj_per_dram_byte: float
    static_power_w: float
    dataflow: str = "weight_stationary"  # or "output_stationary" (hw_profiles.fpga)
    # [fpga.search]: the options co-exploration tries per knob (hw_profiles.fpga_space); None: defaults
    search: Mapping[str, tuple] | None = field(default=None, compare=False)


SPECS = {"cpu": CpuSpec, "gpu": GpuSpec, "mcu": McuSpec, "fpga": FpgaSpec}
Spec = Union[CpuSpec, GpuSpec, McuSpec, FpgaSpec]


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    kind: str
    description: str
    spec: Spec
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name@version``: the provenance tag every metric of this profile carries."""
        return f"{self.name}@{self.version}"


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string"}


def _check(value, annotation, where: str):
    """``value`` converted to ``annotation`` (int, float, str, Mapping[str, float], or one of them
    ``| None``, where TOML's missing key is the None) or ProfileError."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (collections.abc.Mapping, dict):
        if not isinstance(value, dict):
            raise ProfileError(f"{where} must be a table of numbers, got {value!r}")
        return types.MappingProxyType({k: _check(v, float, f"{where}.{k}") for k, v in value.items()})
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, annotation) and not isinstance(value, bool):
        return value
    raise ProfileError(f"{where} must be {_TYPE_WORDS.get(annotation, annotation)}, got {value!r}")


def parse_profile(blob: dict, *, source: str) -> Profile:
    """Validate a parsed TOML document against the schema (see the module docstring)."""
    header = {}
    for key in ("name", "version", "kind", "description"):
        if key not in blob:
            raise ProfileError(f"{source}: missing key {key!r} (a string)")
        header[key] = _check(blob[key], str, f"{source}: {key}")
    kind = header["kind"]
    if kind not in SPECS:
        raise ProfileError(f"{source}: kind={kind!r} is not one of {list(SPECS)}")
    table = blob.get(kind)
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: missing table [{kind}] with the {kind} spec")
    spec_cls = SPECS[kind]
    hints = typing.get_type_hints(spec_cls)
    known = {f.name for f in dataclasses.fields(spec_cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ProfileError(f"{source}: unknown key(s) {unknown} in [{kind}]; valid: {', '.join(sorted(known))}")
    values = {}
    for f in dataclasses.fields(spec_cls):
        if f.name in _SPECIAL_KEYS.get(kind, {}):
            if f.name in table:
                values[f.name] = _SPECIAL_KEYS[kind][f.name](table[f.name], f"{source}: {kind}.{f.name}")
            continue
        if f.name not in table:
            if f.default is dataclasses.MISSING:
                raise ProfileError(f"{source}: missing key {kind}.{f.name} ({_TYPE_WORDS.get(hints[f.name], 'a table')})")
            continue
        values[f.name] = _check(table[f.name], hints[f.name], f"{source}: {kind}.{f.name}")
    sources = blob.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise ProfileError(f"{source}: [sources] must map coefficient names to strings")
    extra = sorted(set(blob) - {"name", "version", "kind", "description", kind, "sources"})
    if extra:
        raise ProfileError(f"{source}: unknown top-level key(s) {extra}")
    for check in _RANGE_CHECKS.get(kind, ()):
        check(values, f"{source}: {kind}")
    return Profile(spec=spec_cls(**values), sources=types.MappingProxyType(dict(sources)), **header)


def _check_float_macs(values: dict, where: str) -> None:
    rates = values.get("float_macs_per_cycle")
    if rates is None:
        return
    unknown = sorted(set(rates) - set(MCU_OP_KINDS))
    if unknown:
        raise ProfileError(f"{where}.float_macs_per_cycle has unknown op kind(s) {unknown}; "
                           f"valid: {', '.join(MCU_OP_KINDS)}")
    for op, rate in rates.items():
        if not (rate > 0 and math.isfinite(rate)):
            raise ProfileError(f"{where}.float_macs_per_cycle.{op} must be a finite number > 0 "
                               f"(fp32 MACs per cycle), got {rate!r}")


def _parse_search(value, where: str) -> Mapping[str, tuple]:
    from hw_profiles.fpga_space import parse_search_table

    return parse_search_table(value, where)


def _check_fpga(values: dict, where: str) -> None:
    from hw_profiles.fpga_space import check_template_ranges

    check_template_ranges(values, where)


_SPECIAL_KEYS = {"fpga": {"search": _parse_search}}
"""Per kind, keys whose tables have their own parser (``value, where -> parsed``)."""

_RANGE_CHECKS = {"mcu": (_check_float_macs,), "fpga": (_check_fpga,)}
"""Per kind, checks of value ranges beyond the types (``values``: the checked keys of the table)."""


def load_profile_file(path: Path) -> Profile:
    try:
        blob = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ProfileError(f"cannot read profile {str(path)!r}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProfileError(f"profile {str(path)!r} is not valid TOML: {err}") from None
    return parse_profile(blob, source=Path(path).name)


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def get_profile(name: str) -> Profile:
    """The shipped profile ``name``, or a profile file given by path (``*.toml``)."""
    if name.endswith(".toml"):
        return load_profile_file(Path(name))
    path = PROFILE_DIR / f"{name}.toml"
    if not path.exists():
        raise UnknownProfileError(f"unknown device profile {name!r}; known profiles: {', '.join(list_profiles())}")
    profile = load_profile_file(path)
    if profile.name != name:
        raise ProfileError(f"{path.name}: name={profile.name!r} must equal the file name {name!r}")
    return profile

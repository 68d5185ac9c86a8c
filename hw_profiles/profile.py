"""Device profiles: versioned TOML data (``hw_profiles/profiles/*.toml``) and their schema.

A profile file has top-level ``name``, ``version``, ``kind`` (cpu | gpu | mcu | fpga),
``description``, one table named after its kind holding that kind's spec, and a ``[sources]``
table saying where each coefficient comes from. A file that breaks the schema gets a one-line
``ProfileError`` naming the file, the key and the expected type or valid range.

The schema is declared next to the fields: every spec field carries its valid values in
``field(metadata={"valid": ...})`` (a :class:`Bounds` for a number, a :class:`Text` for a string, a
:class:`Table` for a table of numbers), and :func:`check_field` is the one place that checks a value
against its field's type and declaration (that machinery lives in :mod:`hw_profiles._schema` and is
importable from here). Checks that relate several keys (a GPU's default precision
has a peak rate, an FPGA search range fits the device) are ``_RANGE_CHECKS``.

Provenance: a profile loaded by name from ``hw_profiles/profiles/`` is *shipped*; its ``ref`` is
``name@version``. A profile loaded from a path (``get_profile("x.toml")``, :func:`load_profile_file`)
carries that ``path`` and the ``content_hash`` of the file's bytes (sha256, 12 hex digits), and its
``ref`` is ``name@version+file:HASH``, so a copied or edited file never passes as the shipped profile
in a ``Metric``'s ``profile``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Union

from hw_profiles._schema import (TYPE_WORDS, Bounds, ProfileError, Table, Text, check_field,  # noqa: F401
                                 check_fields, check_type, fields_of, valid)
from hw_profiles.fpga_rows import DATAFLOWS
from search_spaces import UnknownNameError
from search_spaces._checks import shown

PROFILE_DIR = Path(__file__).parent / "profiles"
MAX_PROFILE_BYTES = 1 << 20
"""A profile file larger than this (1 MiB; the shipped ones are under 12 KiB) is refused unread."""


class UnknownProfileError(UnknownNameError):
    """No profile with that name; the message lists the known ones."""


# ------------------------------------------------------------------------------ the declarations
# Physical limits, generous (orders of magnitude beyond today's smallest and largest parts), so that a
# sign, a zero or a typo of several orders of magnitude is refused while every real device fits. The
# floors of rates keep every estimate finite (a clock of 1e-300 Hz would make latency inf).
MAX_BYTES = 1 << 40  # 1 TiB: any memory or buffer size
CLOCK = Bounds(1e3, 1e10, unit="Hz")  # 1 kHz to 10 GHz
BANDWIDTH = Bounds(1e3, 1e15, unit="bytes/s")  # up to 1 PB/s (H100 HBM3: 3.35e12)
FLOPS = Bounds(1e6, 1e18, unit="FLOP/s")  # up to 1 EFLOP/s on one device (H100 int8 dense: 2e15)
FRACTION = Bounds(1e-6, 1, unit="fraction of peak")  # an efficiency: (0, 1], at least one millionth
POSITIVE_BYTES = Bounds(1, MAX_BYTES, unit="bytes")
BYTES = Bounds(0, MAX_BYTES, unit="bytes")
CYCLES = Bounds(0, 1e9, unit="cycles")  # a per-layer overhead
NAME = Text(pattern=r"[A-Za-z0-9][A-Za-z0-9._+-]*", max_len=64,
            what="a name of letters, digits and . _ + - (e.g. 'a100'), at most 64 characters")
VERSION = Text(pattern=r"[A-Za-z0-9][A-Za-z0-9._+=,-]*", max_len=64,
               what="a version of letters, digits and . _ + = , - (e.g. '1'), at most 64 characters")
NON_EMPTY = Text(pattern=r"[^\x00-\x1f\x7f]+", what="a non-empty line of text (no control characters)")

CPU_BACKENDS = ("onnxruntime", "tvm", "torch")
"""What measures a CPU profile (``kernels.runners.BACKENDS``)."""

GPU_PRECISIONS = ("fp32", "fp16", "int8")
"""The precisions a GPU profile may give a peak rate for (``hw_profiles.gpu.BYTES_PER_ELEMENT``)."""


@dataclass(frozen=True)
class CpuSpec:
    """A CPU measured through ``kernels`` (onnxruntime by default, or tvm or torch)."""

    backend: str = valid(Text(choices=CPU_BACKENDS), "onnxruntime")
    threads: int = valid(Bounds(0, 4096, unit="threads, 0: every core"), 0)  # 0: every core
    target: str = valid(NON_EMPTY, "llvm")  # TVM target kind for builds on this CPU
    # A board other than this host: LLVM triple/CPU/features for TVM cross builds (empty: this host),
    # the compiler that links its .so (empty: object files in a .tar), and the TVM RPC tracker key
    # it registers under (empty: measured on this host). The tracker is HOST:PORT.
    mtriple: str = valid(Text(), "")
    mcpu: str = valid(Text(), "")
    mattr: str = valid(Text(), "")  # comma-separated, e.g. "+neon"
    cross_compiler: str = valid(Text(), "")
    rpc_key: str = valid(Text(), "")
    rpc_tracker: str = valid(Text(pattern=r"\S+:[0-9]{1,5}", what="HOST:PORT such as 127.0.0.1:9190"),
                             "127.0.0.1:9190")


@dataclass(frozen=True)
class GpuSpec:
    """Roofline coefficients; measured with CUDA where the GPU is present."""

    # per precision: "fp32", "fp16", "int8" (FLOP/s, MAC = 2 FLOP)
    peak_flops: Mapping[str, float] = valid(Table(GPU_PRECISIONS, FLOPS, key_word="precision"))
    memory_bandwidth_bytes_per_s: float = valid(BANDWIDTH)
    launch_overhead_s: float = valid(Bounds(0, 1, unit="s"))  # per kernel
    compute_efficiency: float = valid(FRACTION)  # fraction of peak a conv kernel reaches (effective peak)
    memory_efficiency: float = valid(FRACTION)  # fraction of peak bandwidth reached
    default_precision: str = valid(Text(choices=GPU_PRECISIONS), "fp16")  # must have a peak_flops rate
    cuda_name: str = valid(Text(), "")  # measured when torch.cuda.get_device_name() contains this (e.g. "A100")
    # CUDA compute capability for TVM builds, e.g. "sm_80"
    cuda_arch: str = valid(Text(pattern=r"(sm_[0-9]{2,3}[a-z]?)?", what="empty or a CUDA arch such as 'sm_80'"), "")


MCU_OP_KINDS = ("conv", "pwconv", "dwconv", "linear")
"""The op kinds an MCU profile must give MAC rates for (``gap`` has no MACs)."""

MCU_EXTRA_KINDS = {"patch_embed": "conv", "matmul": "pwconv"}
"""Op kinds an MCU profile *may* give MAC rates for, each mapped to the kind whose rate it takes
otherwise (so every profile written before transformers still loads). A patch embedding is a dense
conv (kernel = stride, no overlap): the ``conv`` rate. An attention matmul (QKᵀ, AV) is a batched
int8 GEMM with both operands in SRAM, the inner loop of a 1×1 conv (TinyEngine's 2×2 output ×
pixel SMLAD kernel, with k or v in place of the weights): the ``pwconv`` rate. Estimates, not
measured."""

MCU_RATE_KINDS = (*MCU_OP_KINDS, *MCU_EXTRA_KINDS)

ELEMENT_CYCLE_DEFAULTS = {"layernorm": 24.0, "softmax": 60.0, "gelu": 8.0}
"""Cycles per element of a transformer's element-wise rows on an MCU, for a profile that sets no
``<kind>_cycles_per_element``. Estimates (not measured), in the units of
``elementwise_cycles_per_element`` (8 on the shipped boards): layer norm is a statistics pass (sum
and sum of squares, ~3 cycles/element) plus a normalise-affine-requantise pass (~20, like
TinyEngine's requantising add.c): 24; softmax (CMSIS-NN ``arm_softmax_s8``) is a max pass, an
exp-and-sum pass and an exp-and-scale pass, each fixed-point exp ~25 instructions: 60; an int8 GELU
is a 256-entry lookup table (TF Lite Micro's int8 GELU kernel) plus requantisation, like h-swish: 8.
An fp32 row pays the same per element (as ``elementwise_cycles_per_element``): optimistic for
softmax and GELU, whose float exp/erf are library calls."""

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

_MCU_RATE = Bounds(1e-6, 4096, unit="MACs per cycle")  # > 0; an Ethos-U55 NPU does 256
_MCU_FLOAT_RATE = Bounds(1e-6, 4096, unit="fp32 MACs per cycle")


@dataclass(frozen=True)
class McuSpec:
    """A microcontroller running int8 kernels (CMSIS-NN-like), and fp32 rows of a mixed-precision
    network on its FPU. Units: Hz, bytes, cycles; every op kind's rate must be positive (SE's 1x1
    convs run at the ``linear`` rate); the kinds of ``MCU_EXTRA_KINDS`` are optional (default: the
    rate of the kind they map to). ``float_macs_per_cycle`` (optional, per op kind of
    ``MCU_RATE_KINDS``, each > 0) is the fp32 rate; an op kind it leaves out runs at
    ``FLOAT_MAC_RATIO`` times its int8 rate. ``layernorm``/``softmax``/``gelu_cycles_per_element``
    (optional; None: ``ELEMENT_CYCLE_DEFAULTS``). ``hw_profiles.mcu``."""

    core: str = valid(NON_EMPTY)
    clock_hz: float = valid(CLOCK)
    sram_bytes: int = valid(POSITIVE_BYTES)
    flash_bytes: int = valid(POSITIVE_BYTES)
    # per op kind: conv, pwconv, dwconv, linear (and optionally patch_embed, matmul)
    macs_per_cycle: Mapping[str, float] = valid(Table(MCU_RATE_KINDS, _MCU_RATE, required=MCU_OP_KINDS,
                                                      key_word="op kind"))
    runtime_flash_bytes: int = valid(BYTES)  # inference runtime + kernels + graph, besides the weights
    runtime_sram_bytes: int = valid(BYTES)  # stack, runtime state, scratch buffers, besides activations
    per_layer_overhead_cycles: float = valid(CYCLES)
    elementwise_cycles_per_element: float = valid(Bounds(0, 1e6, unit="cycles"))  # pooling, residual adds, SE scaling
    # fp32 rows; None: FLOAT_MAC_RATIO x int8
    float_macs_per_cycle: Mapping[str, float] | None = valid(Table(MCU_RATE_KINDS, _MCU_FLOAT_RATE,
                                                                   key_word="op kind"), None)
    # transformer element-wise rows, cycles per element; None: ELEMENT_CYCLE_DEFAULTS
    layernorm_cycles_per_element: float | None = valid(Bounds(0, 1e6, unit="cycles"), None)
    softmax_cycles_per_element: float | None = valid(Bounds(0, 1e6, unit="cycles"), None)
    gelu_cycles_per_element: float | None = valid(Bounds(0, 1e6, unit="cycles"), None)

    def int8_rate(self, op: str) -> float:
        """MACs per cycle of an int8 row of op kind ``op`` (a kind of ``MCU_RATE_KINDS``)."""
        rates = self.macs_per_cycle
        return rates[op] if op in rates else rates[MCU_EXTRA_KINDS[op]]

    def float_rate(self, op: str) -> float:
        """MACs per cycle of an fp32 row of op kind ``op``: its own fp32 rate, else (an optional kind
        without an int8 rate) the fp32 rate of the kind it maps to, else ``FLOAT_MAC_RATIO`` × int8."""
        rates = self.float_macs_per_cycle
        if rates is not None and op in rates:
            return rates[op]
        if op not in self.macs_per_cycle and op in MCU_EXTRA_KINDS:
            return self.float_rate(MCU_EXTRA_KINDS[op])
        return self.macs_per_cycle[op] * FLOAT_MAC_RATIO

    def cycles_per_element(self, kind: str) -> float:
        """Cycles per element of a ``layernorm``, ``softmax`` or ``gelu`` pass (``ELEMENT_CYCLE_DEFAULTS``
        where the profile sets none)."""
        value = getattr(self, f"{kind}_cycles_per_element")
        return ELEMENT_CYCLE_DEFAULTS[kind] if value is None else value


MAX_BIT_WIDTH = 32
"""The widest element an FPGA template computes on (bits per weight and activation)."""

_ENERGY = Bounds(0, 1e6, unit="pJ")


@dataclass(frozen=True)
class FpgaSpec:
    """An accelerator template on an FPGA: the explicit parameters co-exploration will search. The
    declared ranges also hold for the options of ``[fpga.search]`` (``hw_profiles.fpga_space``)."""

    device: str = valid(NON_EMPTY)
    dsp_total: int = valid(Bounds(1, 10**6, unit="DSP slices"))
    bram18k_total: int = valid(Bounds(1, 10**6, unit="BRAM18K blocks"))
    pe_rows: int = valid(Bounds(1, 4096))  # parallel output channels
    pe_cols: int = valid(Bounds(1, 4096))  # parallel input channels (or kernel taps for depthwise)
    # bits per weight and activation element (8: int8)
    bit_width: int = valid(Bounds(1, MAX_BIT_WIDTH, unit="bits"))
    clock_hz: float = valid(CLOCK)
    # effective (sustained) off-chip bandwidth, not the peak
    ddr_bandwidth_bytes_per_s: float = valid(BANDWIDTH)
    input_buffer_bytes: int = valid(POSITIVE_BYTES)
    weight_buffer_bytes: int = valid(POSITIVE_BYTES)
    output_buffer_bytes: int = valid(POSITIVE_BYTES)
    macs_per_dsp: int = valid(Bounds(1, 64))  # int8 packs 2 MACs in one DSP48E2
    per_layer_overhead_cycles: float = valid(CYCLES)
    energy_pj_per_mac: float = valid(_ENERGY)
    energy_pj_per_dram_byte: float = valid(_ENERGY)
    static_power_w: float = valid(Bounds(0, 1e4, unit="W"))
    dataflow: str = valid(Text(choices=DATAFLOWS), "weight_stationary")  # or "output_stationary" (hw_profiles.fpga)
    # [fpga.search]: the options co-exploration tries per knob (hw_profiles.fpga_space); None: defaults
    search: Mapping[str, tuple] | None = field(default=None, compare=False)


SPECS = {"cpu": CpuSpec, "gpu": GpuSpec, "mcu": McuSpec, "fpga": FpgaSpec}
Spec = Union[CpuSpec, GpuSpec, McuSpec, FpgaSpec]


@dataclass(frozen=True)
class Profile:
    """A device profile. ``path`` and ``content_hash`` are set for a profile loaded from a path
    (module doc) and None for a shipped one; they are provenance, not part of equality."""

    name: str = valid(NAME)
    version: str = valid(VERSION)
    kind: str = valid(Text(choices=tuple(SPECS)))
    description: str = valid(Text(pattern=r"(?s).*", max_len=10_000))
    spec: Spec
    sources: Mapping[str, str] = field(default_factory=dict)
    path: str | None = field(default=None, compare=False)
    content_hash: str | None = field(default=None, compare=False)

    @property
    def ref(self) -> str:
        """The provenance tag every metric of this profile carries: ``name@version`` for a shipped
        profile, ``name@version+file:HASH`` for one loaded from a path (module doc)."""
        base = f"{self.name}@{self.version}"
        return base if self.content_hash is None else f"{base}+file:{self.content_hash}"

    @property
    def shipped(self) -> bool:
        """Whether this is a shipped profile (loaded by name from ``hw_profiles/profiles/``)."""
        return self.content_hash is None


def parse_profile(blob: dict, *, source: str) -> Profile:
    """Validate a parsed TOML document against the schema (see the module docstring)."""
    header = {}
    for key in ("name", "version", "kind", "description"):
        if key not in blob:
            raise ProfileError(f"{source}: missing key {key!r} (a string)")
        if key == "kind":
            header[key] = check_type(blob[key], str, f"{source}: {key}")
            if header[key] not in SPECS:
                raise ProfileError(f"{source}: kind={shown(header[key])} is not one of {list(SPECS)}")
        else:
            header[key] = check_field(Profile, key, blob[key], f"{source}: {key}")
    kind = header["kind"]
    table = blob.get(kind)
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: missing table [{kind}] with the {kind} spec")
    spec_cls = SPECS[kind]
    known = fields_of(spec_cls)
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ProfileError(f"{source}: unknown key(s) {shown(unknown, 120)} in [{kind}]; "
                           f"valid: {', '.join(sorted(known))}")
    values = {}
    for name, (f, annotation) in known.items():
        where = f"{source}: {kind}.{name}"
        if name in _SPECIAL_KEYS.get(kind, {}):
            if name in table:
                values[name] = _SPECIAL_KEYS[kind][name](table[name], where)
            continue
        if name not in table:
            if f.default is dataclasses.MISSING:
                raise ProfileError(f"{source}: missing key {kind}.{name} ({TYPE_WORDS.get(annotation, 'a table')})")
            continue
        values[name] = check_field(spec_cls, name, table[name], where)
    sources = blob.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise ProfileError(f"{source}: [sources] must map coefficient names to strings")
    extra = sorted(set(blob) - {"name", "version", "kind", "description", kind, "sources"})
    if extra:
        raise ProfileError(f"{source}: unknown top-level key(s) {shown(extra, 120)}")
    for check in _RANGE_CHECKS.get(kind, ()):
        check(values, f"{source}: {kind}")
    return Profile(spec=spec_cls(**values), sources=types.MappingProxyType(dict(sources)), **header)


def _check_gpu_precision(values: dict, where: str) -> None:
    precision = values.get("default_precision", "fp16")
    if precision not in values["peak_flops"]:
        raise ProfileError(f"{where}.default_precision={precision!r} has no rate in peak_flops "
                           f"(which has {sorted(values['peak_flops'])}); add one or pick one of those")


def _parse_search(value, where: str) -> Mapping[str, tuple]:
    from hw_profiles.fpga_space import parse_search_table

    return parse_search_table(value, where)


def _check_fpga(values: dict, where: str) -> None:
    from hw_profiles.fpga_space import check_search_fits

    check_search_fits(values, where)


_SPECIAL_KEYS = {"fpga": {"search": _parse_search}}
"""Per kind, keys whose tables have their own parser (``value, where -> parsed``)."""

_RANGE_CHECKS = {"gpu": (_check_gpu_precision,), "fpga": (_check_fpga,)}
"""Per kind, checks that relate several keys (``values``: the checked keys of the table); each key's
own range is declared on its field and checked by :func:`check_field`."""


# ------------------------------------------------------------------------------ loading
def _read(path: Path) -> tuple[dict, bytes]:
    """The parsed TOML document at ``path`` and its bytes; ProfileError if unreadable or malformed."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_PROFILE_BYTES + 1)
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        raise ProfileError(f"cannot read profile {str(path)!r}: {getattr(err, 'strerror', None) or err}") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"profile {str(path)!r} is larger than {MAX_PROFILE_BYTES} bytes: not a profile")
    try:
        return tomllib.loads(data.decode("utf-8")), data
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProfileError(f"profile {str(path)!r} is not valid TOML: {err}") from None
    except RecursionError:
        raise ProfileError(f"profile {str(path)!r} is not valid TOML: nested too deeply") from None


def load_profile_file(path: Path | str) -> Profile:
    """The profile in the file at ``path``, with its path and content hash as provenance (module doc)."""
    blob, data = _read(Path(path))
    profile = parse_profile(blob, source=Path(path).name)
    return dataclasses.replace(profile, path=str(Path(path).resolve()),
                               content_hash=hashlib.sha256(data).hexdigest()[:12])


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def get_profile(name: str) -> Profile:
    """The shipped profile ``name``, or a profile file given by path (``*.toml``, with its provenance)."""
    if name.endswith(".toml"):
        return load_profile_file(Path(name))
    if not re.fullmatch(NAME.pattern, name) or name not in list_profiles():
        raise UnknownProfileError(f"unknown device profile {shown(name)}; known profiles: "
                                  f"{', '.join(list_profiles())}")
    path = PROFILE_DIR / f"{name}.toml"
    blob, _ = _read(path)
    profile = parse_profile(blob, source=path.name)
    if profile.name != name:
        raise ProfileError(f"{path.name}: name={profile.name!r} must equal the file name {name!r}")
    return profile

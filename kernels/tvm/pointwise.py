"""int8 pointwise (1x1) convolutions on AVX-512 VNNI (``vpdpbusd``): a schedule rule (Apache TVM 0.27).

Contract: :func:`schedule_pointwise` takes a legalised PrimFunc's ``conv2d_nchw`` block that is a 1x1,
stride-1, batch-1 convolution of uint8 data with int8 weights summed in int32 (``kernels.tvm.int8``'s
pointwise convs) on a map of >= 16 pixels, with one epilogue block after it, and schedules it so that
one ``vpdpbusd`` adds 16 pixels x 4 input channels of one output channel, exactly (integer sums: the
same values as the simple rules). It returns the names of the blocks it scheduled, or None (``sch``
untouched) when the block does not qualify (:func:`qualifies`); a step TVM refuses raises, half way
through, so the caller works on a fresh copy and keeps the simple rules then. Only for targets with
AVX-512 VNNI (:func:`has_vnni`).

How: the pixels are flattened (``p = h*W + w``), so a vector always holds 16 pixels whatever the
width. The data are copied once into a packed buffer ``(1, C/4, P, 4)`` (four consecutive input
channels of one pixel form one 32-bit lane); one output channel's 4 weights are broadcast to all
lanes, so the weights stay OIHW as imported. The accumulator is laid out ``(1, O, P)``; a map or a
channel count that does not fill whole vectors is padded with zeros (which add nothing). The epilogue
(zero-point correction, scale, bias, requantize: inlined into one block) is re-indexed over pixels and
computed per register tile of ``OUT_TILE`` output channels x :func:`pixel_vectors` vectors, while the
sums are in cache. The tiles run in parallel.

The same rule for float32 (flattened pixels, FMA instead of ``vpdpbusd``) was tried and dropped: in
the running network 20x20 maps got 2x faster, 10x10 and 5x5 10-25%, but 40x40 and 80x80 maps
1.6-1.9x slower, and limited to maps of <= 1024 pixels whose width is not a multiple of 16 the whole
ofa_mbv3 network came out at 0.93-1.02x (160 px) and 0.99-1.06x (224 px) of the simple rules.

TVM 0.27 ships a VNNI intrinsic (``s_tir.tensor_intrin.x86.dot_16x4_vnni``) but it calls
``llvm.x86.avx512.vpdpbusd.512`` with ``<16 x i32>`` operands, which its LLVM rejects (the intrinsic
takes ``<64 x i8>`` since LLVM 20): module verification fails. Ours passes bytes, and broadcasts the
weights instead of the data.
"""

from __future__ import annotations

import numpy as np

from kernels.errors import KernelError
from kernels.tvm._common import _tvm, functions_containing

VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"
INTRIN = "hwnas_vpdpbusd_16px_x4"  # C[16] += A[16 pixels, 4 u8] . B[4 s8] broadcast
LANES = 16  # int32 lanes of one zmm register
GROUP = 4  # bytes summed into one lane
OUT_TILE = 4  # output channels per register tile (each reuses a data vector)
DTYPES = ("uint8", "int8", "int32")  # data, weights, sums
_registered: list[bool] = []


def has_vnni(target) -> bool:
    """Whether the LLVM ``target`` has AVX-512 VNNI (False for any target LLVM cannot describe)."""
    _tvm()
    from tvm.target import codegen

    try:
        return str(target.kind.name) == "llvm" and bool(codegen.target_has_features("avx512vnni", target))
    except Exception:  # noqa: BLE001
        return False


def vnni_functions(mod) -> int:
    """How many PrimFuncs of a scheduled ``mod`` call ``vpdpbusd`` (pointwise convs on VNNI)."""
    return functions_containing(mod, VPDPBUSD)


def _register_intrinsic() -> None:
    if _registered:
        return
    _tvm()
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(a: T.Buffer((LANES, GROUP), "uint8", offset_factor=1), b: T.Buffer((GROUP, 1, 1), "int8", offset_factor=1),
             c: T.Buffer((LANES,), "int32", offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(c[0:LANES], a[0:LANES, 0:GROUP], b[0:GROUP, 0:1, 0:1])
            T.writes(c[0:LANES])
            for i, k in T.grid(LANES, GROUP):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    c[vi] = c[vi] + T.cast(a[vi, vk], "int32") * T.cast(b[vk, 0, 0], "int32")

    @T.prim_func(s_tir=True)
    def impl(a: T.Buffer((LANES, GROUP), "uint8", offset_factor=1), b: T.Buffer((GROUP, 1, 1), "int8", offset_factor=1),
             c: T.Buffer((LANES,), "int32", offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(c[0:LANES], a[0:LANES, 0:GROUP], b[0:GROUP, 0:1, 0:1])
            T.writes(c[0:LANES])
            data = T.reinterpret(a.vload([0, 0], "uint8x64"), dtype="int8x64")
            weights = T.reinterpret(T.broadcast(T.reinterpret(b.vload([0, 0, 0], "int8x4"), dtype="int32"), LANES),
                                    dtype="int8x64")
            c[T.ramp(T.int32(0), 1, LANES)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(VPDPBUSD), c.vload([0], "int32x16"), data, weights,
                dtype="int32x16")

    TensorIntrin.register(INTRIN, desc, impl, override=True)
    _registered.append(True)


def pixel_vectors(pixels: int) -> int:
    """16-pixel vectors per register tile: of 4, 2, 1 the one that pads ``pixels`` least (ties: more)."""
    return min((4, 2, 1), key=lambda v: (-(-pixels // (LANES * v)) * LANES * v, -v))


def _shapes(sch, block):
    """``(out_channels, in_channels, height, width)`` of a qualifying pointwise conv block, else None."""
    from tvm import tirx

    stmt = sch.get(block)
    if not stmt.name_hint.startswith("conv2d_nchw") or len(stmt.reads) != 2 or len(stmt.writes) != 1:
        return None
    data, weight, out = stmt.reads[0].source, stmt.reads[1].source, stmt.writes[0].source
    if (str(data.dtype), str(weight.dtype), str(out.dtype)) != DTYPES:
        return None
    try:
        n, channels, height, width = (int(d) for d in data.shape)
        out_channels, in_channels, kh, kw = (int(d) for d in weight.shape)
        shape = tuple(int(d) for d in out.shape)
    except TypeError:  # a symbolic dimension
        return None
    extents = [sch.get(loop).extent for loop in sch.get_loops(block)]
    if not all(isinstance(e, tirx.IntImm) for e in extents):
        return None
    if (n, kh, kw) != (1, 1, 1) or channels != in_channels or shape != (1, out_channels, height, width):
        return None
    if [int(e.value) for e in extents] != [1, out_channels, height, width, channels, 1, 1]:
        return None
    if any(out.same_as(param) for param in sch.mod["main"].params):
        return None  # the sums are the function's output: their layout cannot change
    if height * width < LANES:  # 1x1 maps (squeeze-excite, head): one vector would be mostly padding
        return None
    return out_channels, channels, height, width


def qualifies(sch, block) -> bool:
    """Whether ``block`` of ``sch`` is a pointwise conv :func:`schedule_pointwise` takes (read only)."""
    return _shapes(sch, block) is not None and len(sch.get_consumers(block)) == 1


def schedule_pointwise(sch, block, *, cores: int, lanes: int):
    """Schedule a qualifying pointwise conv block (module docstring) in ``sch``, its epilogue ``lanes``
    float32 lanes wide: the names of the blocks scheduled, or None (``sch`` untouched) when it does
    not qualify. Raises where TVM refuses a step (``sch`` then half-changed: pass a copy)."""
    shapes, consumers = _shapes(sch, block), sch.get_consumers(block)
    if shapes is None or len(consumers) != 1:  # what qualifies() checks, each computed once
        return None
    _register_intrinsic()
    out_channels, channels, height, width = shapes
    pixels = height * width
    vectors = pixel_vectors(pixels)
    epilogue = consumers[0]
    padded = bool(pixels % (LANES * vectors) or channels % GROUP)
    packing = sch.cache_read(block, 0, "global")
    names = {sch.get(b).name_hint for b in (block, epilogue, packing)}
    # pixels flattened: the accumulator, the epilogue and the conv iterate (n, o, p)
    sch.transform_layout(block, ("read", 0), lambda n, c, h, w: (n, c, h * width + w))
    sch.transform_layout(block, ("write", 0), lambda n, o, h, w: (n, o, h * width + w))
    sch.transform_block_layout(epilogue, lambda n, o, h, w: (n, o, h * width + w))
    sch.transform_block_layout(block, lambda n, o, h, w, c, kh, kw: (n, o, h * width + w, c, kh, kw))
    if padded:
        sch.pad_einsum(block, [1, 1, LANES * vectors, GROUP, 1, 1])  # zero data and weights add nothing
        names |= {sch.get(b).name_hint for b in sch.get_producers(block) + sch.get_consumers(block)}
        sch.compute_inline(packing)  # the padding copy reads the input itself
        if pixels % (LANES * vectors):  # an unpadding copy of the sums: the epilogue reads them padded
            sch.compute_inline(sch.get_consumers(block)[0])
    sch.transform_layout(block, ("read", 0), lambda n, c, p: (n, c // GROUP, p, c % GROUP))
    n, o, p, c, kh, kw = sch.get_loops(block)
    o_outer, o_inner = sch.split(o, [None, _tile_out(out_channels)])
    p_outer, p_vectors, p_lanes = sch.split(p, [None, vectors, LANES])
    c_outer, c_inner = sch.split(c, [None, GROUP])
    sch.reorder(n, o_outer, p_outer, c_outer, kh, kw, o_inner, p_vectors, p_lanes, c_inner)
    tiles = sch.fuse(n, o_outer, p_outer)
    if cores > 1:
        sch.parallel(tiles)
    sch.unroll(o_inner)
    sch.unroll(p_vectors)
    for stage in sch.get_producers(block):  # the copy into the packed layout: by input channel
        loops = sch.get_loops(stage)
        if cores > 1 and len(loops) > 1:
            sch.parallel(loops[1])
    sch.reverse_compute_at(epilogue, tiles)
    inner = sch.get_loops(epilogue)[-1]
    extent = getattr(sch.get(inner).extent, "value", None)
    if extent and extent % lanes == 0:
        sch.vectorize(sch.split(inner, [None, lanes])[1])
    sch.decompose_reduction(block, c_outer)
    sch.tensorize(p_lanes, INTRIN)
    return names


def _tile_out(out_channels: int) -> int:
    return next(t for t in (OUT_TILE, 2, 1) if out_channels % t == 0)

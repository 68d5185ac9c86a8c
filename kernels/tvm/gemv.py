"""Matrix-vector products at batch 1: a schedule rule of the default CPU schedule (Apache TVM 0.27).

Two kinds of block are matrix-vector products in a MobileNetV3 at batch 1, and the simple rules
vectorise both along the wrong axis for it:

- a pointwise conv on a 1x1 map (squeeze-excite, the head's feature mix): the simple rules vectorise
  the output channels, so each vector of weights (``OIHW``: one row per output channel) is a gather of
  16 rows. Here the input channels are split into vectors (16, 8 or 4 wide, whichever divides them)
  and summed in that many partial sums (``rfactor``), a tile of :data:`ROW_TILE` output channels
  sharing each data vector, and the partial sums are added up per tile, with the epilogue after them.
- a dense layer ``x[1, K] @ W[K, N]`` (the classifier): the simple rules give each parallel chunk
  one vector of columns, so every row of ``W`` is read in pieces of 32 bytes. Here a chunk is up to
  :data:`COLUMN_VECTORS` vectors wide, summed in registers over all of ``K``.

Contract: :func:`schedule_gemv` takes such a block (:func:`qualifies`; float32 or integer sums) and
returns the names of the blocks it scheduled, or None (``sch`` untouched) when it does not qualify; a
step TVM refuses raises half way through, so the caller works on a fresh schedule. Integer sums are
exact; float32 sums are added in another order than the simple rules' (within float rounding).
The loops run in parallel only above ``min_parallel_work`` multiply-adds (a launch costs ~10 us).

Measured on an AMD EPYC (znver4, AVX-512), each task alone, ofa_mbv3 at 160 px: the feature mix
(960 -> 1280) 201 -> 65 us, the classifier (1280 -> 1000) 180 -> 78 us, squeeze-excite convs 2-24 us
-> 1-13 us (one of nine slower: 5.6 -> 8.2 us).
"""

from __future__ import annotations

from kernels.tvm._common import functions_containing

MARK = "hwnas_gemv"  # annotation on the blocks this rule scheduled
ROW_TILE = 4  # output channels sharing one data vector in a 1x1-map conv
COLUMN_VECTORS = 8  # most vectors of columns per chunk of a dense layer (accumulators in registers)


def _kind(sch, block, lanes: int):
    """``("conv", out_channels, in_channels)`` or ``("dense", K, N)`` for a qualifying block, else None."""
    from tvm import tirx

    stmt = sch.get(block)
    if len(stmt.reads) != 2 or len(stmt.writes) != 1:
        return None
    kinds = "".join("S" if iv.iter_type == tirx.IterVar.DataPar else "R" for iv in stmt.iter_vars)
    try:
        shapes = [[int(d) for d in region.source.shape] for region in (*stmt.reads, stmt.writes[0])]
        extents = [int(sch.get(loop).extent) for loop in sch.get_loops(block)]
    except TypeError:  # a symbolic dimension
        return None
    data, weight, out = shapes
    if kinds == "SSSSRRR" and out[:1] == [1] and out[2:] == [1, 1] and len(weight) == 4 and weight[2:] == [1, 1]:
        out_channels, in_channels = weight[:2]
        if data == [1, in_channels, 1, 1] and extents == [1, out_channels, 1, 1, in_channels, 1, 1] \
                and _column_vector(in_channels, lanes):
            return "conv", out_channels, in_channels
    if kinds == "SSR" and len(data) == 2 and data[0] == 1 and len(weight) == 2 and out == [1, weight[1]]:
        k, n = weight
        if extents == [1, n, k] and data[1] == k and _column_vector(n, lanes):
            return "dense", k, n
    return None


def _column_vector(n: int, lanes: int) -> int | None:
    """The widest vector of ``lanes``, 8 or 4 that divides ``n``."""
    return next((v for v in (lanes, 8, 4) if v <= lanes and n % v == 0), None)


def qualifies(sch, block, lanes: int) -> bool:
    """Whether ``block`` of ``sch`` is a matrix-vector product :func:`schedule_gemv` takes (read only)."""
    return _kind(sch, block, lanes) is not None


def schedule_gemv(sch, block, *, cores: int, lanes: int, min_parallel_work: int):
    """Schedule a qualifying block (module docstring): the names of the blocks scheduled, or None
    (``sch`` untouched) when it does not qualify. Raises where TVM refuses a step."""
    kind = _kind(sch, block, lanes)
    if kind is None:
        return None
    consumers = sch.get_consumers(block)
    names = {sch.get(b).name_hint for b in [block, *consumers]}
    parallel = cores > 1 and kind[1] * kind[2] >= min_parallel_work
    if kind[0] == "conv":
        outer, extra = _rows(sch, block, kind[1], lanes, parallel)
        names |= extra
    else:
        outer = _columns(sch, block, kind[2], lanes, parallel)
    sch.annotate(block, MARK, 1)
    for epilogue in consumers:
        sch.reverse_compute_at(epilogue, outer)
        loop = sch.get_loops(epilogue)[-1]
        extent = int(sch.get(loop).extent)
        if extent > 1:
            sch.vectorize(loop if extent <= lanes else sch.split(loop, [None, _column_vector(extent, lanes) or 1])[1])
    return names


def _rows(sch, block, out_channels: int, lanes: int, parallel: bool):
    """A 1x1-map conv as ``lanes`` partial sums per output channel, ``ROW_TILE`` channels per tile."""
    n, o, h, w, rc, ry, rx = sch.get_loops(block)
    rc_outer, rc_inner = sch.split(rc, [None, _column_vector(int(sch.get(rc).extent), lanes)])
    partial = sch.rfactor(rc_inner, factor_axis=4)
    n, o, h, w, rc_outer, rc_inner, ry, rx = sch.get_loops(partial)
    o_outer, o_inner = sch.split(o, [None, next(t for t in (ROW_TILE, 2, 1) if out_channels % t == 0)])
    sch.reorder(n, o_outer, h, w, rc_outer, ry, rx, o_inner, rc_inner)
    outer = sch.fuse(n, o_outer, h, w)
    if parallel:
        sch.parallel(outer)
    sch.unroll(o_inner)
    sch.vectorize(rc_inner)
    sch.reverse_compute_at(block, outer)  # the partial sums added up per tile
    sch.decompose_reduction(partial, rc_outer)
    return outer, {sch.get(partial).name_hint}


def _columns(sch, block, n_columns: int, lanes: int, parallel: bool):
    """A dense layer in chunks of up to ``COLUMN_VECTORS`` column vectors, summed over all rows."""
    vector = _column_vector(n_columns, lanes)
    vectors = n_columns // vector
    per_chunk = max(d for d in range(1, COLUMN_VECTORS + 1) if vectors % d == 0)
    i0, i1, k = sch.get_loops(block)
    chunk, unrolled, lane = sch.split(i1, [None, per_chunk, vector])
    sch.reorder(i0, chunk, k, unrolled, lane)
    outer = sch.fuse(i0, chunk)
    if parallel:
        sch.parallel(outer)
    sch.unroll(unrolled)
    sch.vectorize(lane)
    sch.decompose_reduction(block, k)
    return outer


def gemv_functions(mod) -> int:
    """How many PrimFuncs of a scheduled ``mod`` have a matrix-vector product of this rule's."""
    return functions_containing(mod, MARK)

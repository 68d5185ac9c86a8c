"""Depthwise convolutions in channel blocks: a schedule rule of the default CPU schedule (Apache TVM 0.27).

Contract: :func:`schedule_depthwise` takes a legalised PrimFunc's depthwise conv block (batch 1, one
input channel per group, a window of more than one tap, float32 or int32 sums; ``qualifies``) whose
channel count is a multiple of ``lanes`` and at least ``MIN_CHANNELS`` (and two vectors), and
schedules it so that one vector holds ``lanes`` channels of one output pixel. It returns the names of the blocks it
scheduled, or None (``sch`` untouched) when the block does not qualify; a step TVM refuses raises half
way through, so the caller works on a fresh schedule and keeps the simple rules then. Results equal the
simple rules' (the same sums in the same order per output).

Why: the simple rules vectorise a depthwise conv along the output row. A row of 5, 10 or 20 pixels
fills a vector badly, a stride-2 conv needs a gather for every load, and each of the k x k steps
loads and stores the accumulator again. Here the (padded) input is copied once into a channel-blocked
buffer ``(1, C/lanes, H, W, lanes)`` and the weights into ``(C/lanes, 1, k, k, lanes)``. The
accumulator is a register tile of :data:`PIXEL_TILE` output pixels x ``lanes`` channels, summed over
the whole window (unrolled along the window's row). The epilogue (bias, activation, requantize) runs
per tile, vectorised over the channels, and writes NCHW back. The input's copy and the tiles (channel
block x output row) run in parallel from ``min_parallel_work`` multiply-adds.

Measured on an AMD EPYC (znver4, AVX-512), 2 threads, ofa_mbv3 at 160 px: each depthwise task of a
subnet alone 0.40-1.0x of the simple rules (0.25x for 7x7 stride 2 on an 80x80 map; 11 tasks: 833 us
against 1640 us in all). A single block of 16 channels (the first block's 80x80 map) came out 1.4x
slower, hence the 32-channel minimum: the copies cost as much as the k x k sums there.
"""

from __future__ import annotations

from kernels.tvm._common import functions_containing

MARK = "hwnas_channel_blocked_depthwise"  # annotation on the conv blocks this rule scheduled
PIXEL_TILE = (4, 5, 7, 3, 2)  # output pixels per register tile: the first that divides the row, else 1
MIN_CHANNELS = 32  # and at least two vectors of them
DTYPES = ("float32", "int32")  # of the sums


def _shapes(sch, block):
    """``(channels, kh, kw, height, width, data index, weight index)`` of a qualifying depthwise conv
    block, else None."""
    from tvm import tirx

    stmt = sch.get(block)
    if len(stmt.reads) != 2 or len(stmt.writes) != 1 or len(stmt.iter_vars) != 7:
        return None
    kinds = "".join("S" if iv.iter_type == tirx.IterVar.DataPar else "R" for iv in stmt.iter_vars)
    if kinds != "SSSSRRR":
        return None
    weight_at = next((i for i, r in enumerate(stmt.reads) if _depthwise_weight(r.source)), None)
    if weight_at is None:
        return None
    data, weight, out = stmt.reads[1 - weight_at].source, stmt.reads[weight_at].source, stmt.writes[0].source
    if str(out.dtype) not in DTYPES:
        return None
    try:
        channels, _, kh, kw = (int(d) for d in weight.shape)
        n, c, height, width = (int(d) for d in out.shape)
        data_shape = [int(d) for d in data.shape]
    except TypeError:  # a symbolic dimension
        return None
    extents = [sch.get(loop).extent for loop in sch.get_loops(block)]
    if not all(isinstance(e, tirx.IntImm) for e in extents):
        return None
    if n != 1 or c != channels or len(data_shape) != 4 or data_shape[:2] != [1, channels]:
        return None
    if [int(e.value) for e in extents] != [1, channels, height, width, 1, kh, kw]:
        return None
    if any(out.same_as(param) for param in sch.mod["main"].params):
        return None  # the sums are the function's output: their layout cannot change
    return channels, kh, kw, height, width, 1 - weight_at, weight_at


def _depthwise_weight(buffer) -> bool:
    shape = buffer.shape
    try:
        return len(shape) == 4 and int(shape[1]) == 1 and int(shape[2]) * int(shape[3]) > 1
    except TypeError:
        return False


def _taken(sch, block, lanes: int):
    """``(shapes, consumers)`` of a block this rule takes (channels to fill vectors, at most one
    epilogue), else None."""
    shapes = _shapes(sch, block)
    if shapes is None or shapes[0] % lanes or shapes[0] < max(MIN_CHANNELS, 2 * lanes):
        return None
    consumers = sch.get_consumers(block)
    return (shapes, consumers) if len(consumers) <= 1 else None


def qualifies(sch, block, lanes: int) -> bool:
    """Whether ``block`` of ``sch`` is a depthwise conv :func:`schedule_depthwise` takes (read only)."""
    return _taken(sch, block, lanes) is not None


def schedule_depthwise(sch, block, *, cores: int, lanes: int, min_parallel_work: int):
    """Schedule a qualifying depthwise conv block (module docstring) with ``lanes`` channels per vector,
    in parallel from ``min_parallel_work`` multiply-adds: the names of the blocks scheduled, or None
    (``sch`` untouched) when it does not qualify. Raises where TVM refuses a step (``sch`` then
    half-changed: pass a fresh schedule)."""
    taken = _taken(sch, block, lanes)
    if taken is None:
        return None
    (channels, kh, kw, height, width, data_at, weight_at), consumers = taken

    def blocked(n, c, h, w):
        return n, c // lanes, h, w, c % lanes

    copy = _data_copy(sch, block, data_at)
    weights = sch.cache_read(block, weight_at, "global")
    names = {sch.get(b).name_hint for b in [block, copy, weights, *consumers]}
    sch.transform_layout(copy, ("write", 0), blocked)
    sch.transform_layout(weights, ("write", 0), lambda o, i, y, x: (o // lanes, i, y, x, o % lanes))
    sch.transform_layout(block, ("write", 0), blocked)

    n, c, h, w, rc, ry, rx = sch.get_loops(block)
    tile = next((t for t in PIXEL_TILE if width % t == 0), 1)
    c_outer, c_inner = sch.split(c, [None, lanes])
    w_outer, w_inner = sch.split(w, [None, tile])
    sch.reorder(n, c_outer, h, w_outer, rc, ry, rx, w_inner, c_inner)
    rows = sch.fuse(n, c_outer, h)
    parallel = cores > 1 and channels * height * width * kh * kw >= min_parallel_work
    if parallel:
        sch.parallel(rows)
    sch.vectorize(c_inner)
    sch.unroll(w_inner)
    sch.unroll(rx)
    for epilogue in consumers:  # bias, activation, requantize: per tile, vectorised over channels
        sch.reverse_compute_at(epilogue, w_outer)
        inner = sch.get_loops(epilogue)[2:]  # below (rows, w_outer): channels, then pixels if tile > 1
        if len(inner) == 2:
            sch.reorder(inner[1], inner[0])
        sch.vectorize(inner[0])
    _by_channel_block(sch, copy, lanes, channel_loop=1, parallel=parallel)  # (n, c, h, w)
    _by_channel_block(sch, weights, lanes, channel_loop=0, parallel=False)  # (o, i, y, x): small
    sch.annotate(block, MARK, 1)
    sch.decompose_reduction(block, rc)
    return names


def depthwise_functions(mod) -> int:
    """How many PrimFuncs of a scheduled ``mod`` have a depthwise conv in channel blocks (this rule's)."""
    return functions_containing(mod, MARK)


def _data_copy(sch, block, data_at: int):
    """The block that writes the conv's input: its padding block when the function pads, else a copy."""
    data = sch.get(block).reads[data_at].source
    for producer in sch.get_producers(block):
        if any(region.source.same_as(data) for region in sch.get(producer).writes):
            return producer
    return sch.cache_read(block, data_at, "global")


def _by_channel_block(sch, stage, lanes: int, *, channel_loop: int, parallel: bool) -> None:
    """Loop a copy into a channel-blocked layout with the channels of a block innermost, vectorised;
    ``parallel``: the loops down to the one after the channel block fused and run in parallel."""
    loops = sch.get_loops(stage)
    c_outer, c_inner = sch.split(loops[channel_loop], [None, lanes])
    before, after = loops[:channel_loop], loops[channel_loop + 1:]
    sch.reorder(*before, c_outer, *after, c_inner)
    if parallel:
        sch.parallel(sch.fuse(*before, c_outer, *after[:1]))
    sch.vectorize(c_inner)

"""Integer compute for QDQ int8 models in TVM (Relax, Apache TVM 0.27).

The Relax ONNX frontend imports a QDQ model as written: ``conv2d(dequantize(x_q), dequantize(W_q))``, so
the convolution runs in float32 on dequantized values. :func:`integer_compute` rewrites every such
conv2d (and the classifier's ``matmul(dequantize(x_q), permute_dims(dequantize(W_q)))``) whose operands
qualify into integer compute with int32 accumulation:

    acc = conv2d(pad(x_q, value=z_x), W_q, padding=0, out_dtype="int32") - z_x * sum(W_q[o])
    y   = float32(acc) * (s_x * s_w[o])

which is the same sum as the float conv of the dequantized operands, taken exactly in integers (padding
with the zero point is padding with a real 0), then scaled once. Where ``z_x`` is 0 (after a ReLU) the
conv pads itself (``padding`` kept): no pad op, so no kernel of its own for the padding. The model's own
bias add, activation and ``quantize`` follow unchanged, so the result is requantized as onnxruntime's
int8 kernels do.

Qualifying operands: ``x_q`` (u)int8 with a per-tensor constant scale and zero point; ``W_q`` an int8
constant with zero points all 0 (onnxruntime's symmetric weights) and a per-tensor or per-output-channel (axis 0)
constant scale; NCHW/OIHW layouts, any stride, dilation and groups. Anything else (a float-kept
conv, an asymmetric weight) stays as imported. Every rewritten module has the same inputs and outputs.
The rewrite is target-independent; on a CPU with AVX-512 VNNI the default schedule then runs the
pointwise ones (uint8 data) on ``vpdpbusd`` (:mod:`kernels.tvm.pointwise`).
"""

from __future__ import annotations

import numpy as np

from kernels.errors import KernelError
from kernels.tvm._common import _tvm

INT32_SAFE_TERMS = (2**31 - 1) // (255 * 128)  # products per output before an int32 could overflow


def _const(expr):
    return (expr.value if hasattr(expr, "value") else expr.data).numpy()


def _patterns():
    """``(conv pattern, matmul pattern, parts)``: both match dequantized operands, ``parts`` names them."""
    from tvm.relax.dpl import is_const, is_op, wildcard

    parts = {"x": wildcard(), "sx": is_const(), "zx": is_const(), "w": is_const(), "sw": is_const(), "zw": is_const()}
    data = is_op("relax.dequantize")(parts["x"], parts["sx"], parts["zx"])
    weight = is_op("relax.dequantize")(parts["w"], parts["sw"], parts["zw"])
    parts["weight"] = weight
    parts["transpose"] = is_op("relax.permute_dims")(weight)
    conv = is_op("relax.nn.conv2d")(data, weight)
    matmul = is_op("relax.matmul")(data, parts["transpose"])
    return conv, matmul, parts


def _integer_matmul(call, transpose, x, sx, zx, w, sw):
    """``x @ W.T`` of a 2-D ``x`` and an ``(out, in)`` weight in integers, or None."""
    from tvm import relax

    axes = transpose.attrs.axes
    if w.ndim != 2 or len(x.ty.shape) != 2 or (axes is not None and [int(a) for a in axes] != [1, 0]):
        return None
    if w.shape[1] > INT32_SAFE_TERMS:
        return None
    out_features = w.shape[0]
    zero = int(zx.reshape(-1)[0])
    # int8 weights (not widened to int32 constants): a quarter of the bytes to stream; the classifier's
    # matmul took 234 instead of 276 us on an ofa_mbv3 subnet at 160 px
    acc = relax.op.matmul(x, relax.const(np.ascontiguousarray(w.T).astype(np.int8)), out_dtype="int32")
    if zero:
        correction = (zero * w.astype(np.int64).sum(axis=1)).astype(np.int32)
        acc = relax.op.subtract(acc, relax.const(correction.reshape(1, out_features)))
    return _scaled(acc, sx, sw, out_features, (1, out_features))


def _scaled(acc, sx, sw, channels: int, shape):
    """``float32(acc) * s_x * s_w`` with ``s_w`` per output channel (or one scale), broadcast as ``shape``."""
    from tvm import relax

    scale = np.float32(sx.reshape(-1)[0]) * np.broadcast_to(sw.astype(np.float32).reshape(-1), (channels,))
    return relax.op.multiply(relax.op.astype(acc, "float32"), relax.const(scale.astype(np.float32).reshape(shape)))


def _integer_conv(call, transpose, x, sx, zx, w, sw):
    """The integer replacement of ``call`` (a float conv2d of dequantized operands), or None."""
    from tvm import relax

    attrs = call.attrs
    if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NCHW", "OIHW", "NCHW"):
        return None
    out_channels = w.shape[0]
    if w[0].size > INT32_SAFE_TERMS:
        return None
    zero = int(zx.reshape(-1)[0])
    top, left, bottom, right = (int(p) for p in attrs.padding)
    data, padding = x, [top, left, bottom, right]
    if zero and (top or left or bottom or right):
        # the zero point pads (it dequantizes to 0.0): a pad op of its own, which is a kernel of its own;
        # a zero point of 0 (after a ReLU) pads inside the conv's function, as a float conv does
        data = relax.op.nn.pad(x, [0, 0, 0, 0, top, bottom, left, right], pad_value=float(zero))
        padding = [0, 0, 0, 0]
    acc = relax.op.nn.conv2d(data, relax.const(w.astype("int8")), strides=attrs.strides, padding=padding,
                             dilation=attrs.dilation, groups=attrs.groups, out_dtype="int32")
    if zero:
        correction = (zero * w.astype(np.int64).reshape(out_channels, -1).sum(axis=1)).astype(np.int32)
        acc = relax.op.subtract(acc, relax.const(correction.reshape(1, out_channels, 1, 1)))
    return _scaled(acc, sx, sw, out_channels, (1, out_channels, 1, 1))


def integer_compute(mod):
    """``(module, rewritten)``: ``mod`` with every qualifying dequantize -> conv2d / matmul in integer compute
    (module docstring), and how many ops were rewritten."""
    _tvm()
    from tvm import relax
    from tvm.relax.dpl import rewrite_call

    conv, matmul, parts = _patterns()
    count = [0]

    def rewriter(expr, matches, pattern, build):
        x = matches[parts["x"]]
        sx, zx, w, sw, zw = (_const(matches[parts[k]]) for k in ("sx", "zx", "w", "sw", "zw"))
        dtype = str(x.ty.dtype)
        if dtype not in ("int8", "uint8") or w.dtype != np.int8 or sx.size != 1 or zx.size != 1 or np.any(zw != 0):
            return expr
        if sw.size not in (1, w.shape[0]):
            return expr
        if sw.size > 1 and int(matches[parts["weight"]].attrs.axis) % w.ndim != 0:
            return expr  # per-channel scales along another axis than the output channel
        transpose = matches[parts["transpose"]] if parts["transpose"] in matches else None
        new = build(matches[pattern], transpose, x, sx, zx, w, sw)
        if new is None:
            return expr
        count[0] += 1
        return new

    try:
        updated = {}
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                for pattern, build in ((conv, _integer_conv), (matmul, _integer_matmul)):
                    func = rewrite_call(pattern, lambda e, m, p=pattern, b=build: rewriter(e, m, p, b), func)
                updated[gvar] = func
        for gvar, func in updated.items():
            mod[gvar] = func
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM import failed: rewriting int8 convolutions and matmuls: {type(err).__name__}: {err}") from err
    return mod, count[0]

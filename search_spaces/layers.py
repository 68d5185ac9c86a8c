"""``LayerSpec``: one row of a network's layer table. Plain data, no torch.

Every analytic cost model, latency table and predictor feature reads these rows, and the
module a supernet extracts must agree with them exactly (same MACs, same params).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

CONV_OPS = ("conv", "pwconv", "dwconv")
TRANSFORMER_OPS = ("patch_embed", "tokens", "layernorm", "matmul", "softmax")
OPS = (*CONV_OPS, "gap", "linear", *TRANSFORMER_OPS)
"""Op kinds. CNN: dense k×k conv, 1×1 conv, depthwise conv, global average pool, fully connected.
Transformer rows (see ``LayerSpec``): patch embedding, cls token + position embedding, layer norm,
attention matmul (activation × activation, no weights) and softmax. ``linear`` is shared: a fully
connected layer applied to every token (``in_hw = (tokens, 1)``) or to one vector (``(1, 1)``)."""

WEIGHTED_OPS = (*CONV_OPS, "linear", "patch_embed")
"""Ops with a weight tensor (a kernel a MAC reads); ``matmul`` multiplies two activations."""

ACTIVATIONS = ("none", "relu", "hswish", "gelu")

PRECISION_BITS = {"fp32": (32, 32), "int8": (8, 8)}
"""Numeric formats a row can carry: ``name -> (weight bits, activation bits)``. ``fp32`` is the float
network we train; ``int8`` is signed 8-bit weights and activations (int32 accumulation)."""


@dataclass(frozen=True)
class LayerSpec:
    """One op of the network, in execution order.

    Shapes are NCHW with batch 1. ``in_hw`` is the input height and width; padding is
    ``kernel // 2`` ("same" padding as in OFA).

    Transformer rows hold ``tokens`` token vectors of ``channels`` features as ``in_hw = (tokens, 1)``:
    - ``patch_embed``: a conv with ``kernel == stride == patch`` and no padding over the image (bias);
      its output grid is flattened into tokens for free.
    - ``tokens``: prepends the cls token and adds the position embedding: ``(N, 1) -> (N + 1, 1)``,
      ``in_channels == out_channels``; its params are ``(N + 1) * C + C``.
    - ``layernorm``: per-token norm with an affine pair (``2 * C`` params).
    - ``linear``: per-token fully connected layer (``in_channels -> out_channels``, ``bias``).
    - ``matmul``: a batched activation × activation product as a grouped 1×1 op, one group per
      head: QKᵀ is ``in = heads * head_dim, out = heads * tokens, groups = heads`` and AV is
      ``in = heads * tokens, out = heads * head_dim, groups = heads``; MACs then follow the conv
      formula (``heads * tokens² * head_dim`` each) and its output of QKᵀ is the score buffer.
    - ``softmax``: over the score buffer (``in == out == heads * tokens``). ``se_channels > 0`` means a squeeze-excite
    module (reduce 1×1 conv with bias → ReLU → expand 1×1 conv with bias → h-sigmoid, then a
    channel-wise multiply) acts on this op's output after its activation. ``residual`` marks the
    last op of a block whose output is added to that block's input. ``bn`` is a BatchNorm with
    affine parameters after the op; ``bias`` is the op's own bias. ``precision`` is the row's
    numeric format (a key of ``PRECISION_BITS``) when a quantization policy sets it; ``None`` means
    unset: host runtimes run the float network, and MCU/FPGA models assume their native int8.
    """

    op: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    in_hw: tuple[int, int]
    act: str = "none"
    se_channels: int = 0
    residual: bool = False
    bias: bool = False
    bn: bool = False
    block: str = ""
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.precision is not None and self.precision not in PRECISION_BITS:
            raise ValueError(f"LayerSpec.precision={self.precision!r} is not one of {list(PRECISION_BITS)} (or None)")
        if self.op not in OPS:
            raise ValueError(f"LayerSpec.op={self.op!r} is not one of {list(OPS)}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"LayerSpec.act={self.act!r} is not one of {list(ACTIVATIONS)}")
        for name in ("in_channels", "out_channels", "kernel", "stride", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LayerSpec.{name} must be a positive int, got {value!r}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"LayerSpec.groups={self.groups} must divide in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}"
            )
        if self.op == "patch_embed" and (self.kernel != self.stride or any(n % self.kernel for n in self.in_hw)):
            raise ValueError(f"LayerSpec patch_embed needs kernel == stride dividing in_hw={self.in_hw}, "
                             f"got kernel={self.kernel}, stride={self.stride}")

    @property
    def se(self) -> bool:
        return self.se_channels > 0

    @property
    def workload(self) -> "LayerSpec":
        """This row with its ``block`` label cleared: rows with equal workloads do the same work,
        so latency tables and tuning databases key on it."""
        return replace(self, block="") if self.block else self

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width: 1×1 for ``gap``; the input's for per-token rows."""
        if self.op == "gap":
            return (1, 1)
        if self.op == "patch_embed":
            return (self.in_hw[0] // self.kernel, self.in_hw[1] // self.kernel)
        if self.op == "tokens":
            return (self.in_hw[0] * self.in_hw[1] + 1, 1)
        if self.op in ("linear", "layernorm", "matmul", "softmax"):
            return self.in_hw
        pad = self.kernel // 2
        return tuple((size + 2 * pad - self.kernel) // self.stride + 1 for size in self.in_hw)

    @property
    def weights(self) -> int:
        """Elements of the op's weight tensor (0 for ops without one; SE, BN and bias excluded)."""
        if self.op not in WEIGHTED_OPS:
            return 0
        return self.in_channels // self.groups * self.kernel * self.kernel * self.out_channels

    @property
    def op_macs(self) -> int:
        """Multiply-accumulates of the op itself (SE excluded): convs, linears, patch embedding and
        attention matmuls; 0 for pooling, norms, softmax and the token row."""
        if self.op not in WEIGHTED_OPS and self.op != "matmul":
            return 0
        oh, ow = self.out_hw
        return self.in_channels // self.groups * self.kernel * self.kernel * self.out_channels * oh * ow

    @property
    def in_elements(self) -> int:
        return self.in_channels * self.in_hw[0] * self.in_hw[1]

    @property
    def out_elements(self) -> int:
        oh, ow = self.out_hw
        return self.out_channels * oh * ow

    def to_dict(self) -> dict:
        """JSON-ready dict, with the derived ``out_hw`` and ``se`` added."""
        row = asdict(self)
        row["in_hw"] = list(self.in_hw)
        row["out_hw"] = list(self.out_hw)
        row["se"] = self.se
        return row

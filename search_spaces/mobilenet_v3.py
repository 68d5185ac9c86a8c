"""The elastic MobileNetV3 family of Once-for-All: ``ofa_mbv3`` and the narrow ``tiny_mbv3``.

Network: stem conv → a fixed first block (depthwise + project, no expansion) → elastic stages
of inverted-residual blocks (1×1 expand, k×k depthwise, optional SE, 1×1 project) → 1×1 final
expand → global average pool → 1×1 feature mix (no BN, no bias) → linear classifier.
Per block the kernel and expand ratio are searched, per stage the depth (the first ``d`` blocks
run), and per network the input resolution. Settings are named ``ks_<i>``, ``e_<i>`` for the
i-th block slot (stage-major), ``d_<s>`` per stage and ``r``.

``parse`` also takes OFA's own subnet dict ``{"ks": [...], "e": [...], "d": [...], "r": R}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

from search_spaces.arch import ArchConfig
from search_spaces.choice import Choice
from search_spaces.errors import InvalidArchError
from search_spaces.layers import LayerSpec
from search_spaces.elastic import ElasticFamily

SE_REDUCTION = 4
CHANNEL_DIVISOR = 8


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without going more than 10% below it (OFA/TF rule)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def se_channels(channels: int) -> int:
    """Hidden width of the squeeze-excite module on ``channels`` channels."""
    return make_divisible(channels // SE_REDUCTION)


def expanded_channels(in_channels: int, expand_ratio: float) -> int:
    """Width of an inverted-residual block's expanded (depthwise) part."""
    return make_divisible(round(in_channels * expand_ratio))


@dataclass(frozen=True)
class StageSpec:
    """One elastic stage: output width, block slots, first block's stride, activation, SE."""

    width: int
    max_depth: int
    stride: int
    act: str
    se: bool


@dataclass(frozen=True)
class ActiveBlock:
    """An inverted-residual block that runs in a given arch, with its resolved shapes.

    ``slot`` is the global block index used by ``ks_<slot>``/``e_<slot>`` and by the supernet's
    block list; ``mid_channels`` the expanded width; ``se_channels`` 0 when there is no SE.
    """

    stage: int
    index: int
    slot: int
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    act: str
    se_channels: int
    residual: bool
    in_hw: tuple[int, int]


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output size of a conv with "same" padding ``kernel // 2``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class MobileNetV3Space(ElasticFamily):
    """An elastic MobileNetV3 family. All widths are fixed numbers (no width multiplier)."""

    def __init__(
        self,
        *,
        name: str,
        stages: Sequence[StageSpec],
        kernel_sizes: Sequence[int],
        expand_ratios: Sequence[int],
        depths: Sequence[int],
        resolutions: Sequence[int],
        stem_width: int,
        first_block_width: int,
        final_expand_width: int,
        last_channel: int,
        num_classes: int,
        in_channels: int,
        version: str = "1",
    ) -> None:
        self.stages = tuple(stages)
        for label, value in (
            ("num_classes", num_classes), ("in_channels", in_channels), ("stem_width", stem_width),
            ("first_block_width", first_block_width), ("final_expand_width", final_expand_width),
            ("last_channel", last_channel),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        if not self.stages:
            raise ValueError("a MobileNetV3 space needs at least one stage, got none")
        if max(depths) > min(s.max_depth for s in self.stages) or min(depths) < 1:
            raise ValueError(f"depth choices {list(depths)} must lie in 1..max_depth of every stage")
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.expand_ratios = tuple(sorted(expand_ratios))
        self.depths = tuple(sorted(depths))
        self.resolutions = tuple(sorted(resolutions))
        self.stem_width = stem_width
        self.first_block_width = first_block_width
        self.final_expand_width = final_expand_width
        self.last_channel = last_channel
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.n_slots = sum(s.max_depth for s in self.stages)
        params = (
            [Choice(f"ks_{i}", self.kernel_sizes) for i in range(self.n_slots)]
            + [Choice(f"e_{i}", self.expand_ratios) for i in range(self.n_slots)]
            + [Choice(f"d_{s}", self.depths) for s in range(len(self.stages))]
            + [Choice("r", self.resolutions)]
        )
        super().__init__(name, params, version=version)

    ELASTIC_DIMS = ("ks", "e", "d", "r")
    SHRINK_STAGES = (("full", ("r",)), ("kernel", ("r", "ks")), ("depth", ("r", "ks", "d")),
                     ("expand", ("r", "ks", "d", "e")))  # Once-for-All's order

    def with_resolution(self, arch: ArchConfig, resolution: int) -> ArchConfig:
        """``arch`` with its input resolution replaced."""
        return self.parse({**self.validate(arch).to_dict(), "r": resolution})

    def covering_archs(self, resolutions=None) -> list[ArchConfig]:
        """A block's rows depend only on its stage, whether it opens the stage, its kernel and expand
        ratio: one arch per (resolution, kernel, expand) with every stage at full depth covers them."""
        archs = []
        for r in resolutions or self.resolutions:
            for k in self.kernel_sizes:
                for e in self.expand_ratios:
                    flat = {name: (k if name.startswith("ks_") else e if name.startswith("e_") else r if name == "r"
                                   else max(self.depths)) for name in self.names}
                    archs.append(self.parse(flat))
        return archs

    def slot_range(self, stage: int) -> range:
        start = sum(s.max_depth for s in self.stages[:stage])
        return range(start, start + self.stages[stage].max_depth)

    # ---------------------------------------------------------- canonical form
    def inactive(self, arch: ArchConfig) -> frozenset[str]:
        off = set()
        for s in range(len(self.stages)):
            depth = arch[f"d_{s}"]
            for slot in list(self.slot_range(s))[depth:]:
                off.update((f"ks_{slot}", f"e_{slot}"))
        return frozenset(off)

    # ------------------------------------------------------------ OFA layout
    def _to_flat(self, obj: Mapping) -> dict:
        if not {"ks", "e", "d"} & set(obj):
            return dict(obj)
        extra = sorted(set(obj) - {"ks", "e", "d", "r", "wid"})
        if extra:
            raise InvalidArchError(f"unknown key(s) {extra} in an OFA-style arch; expected ks, e, d, r")
        if obj.get("wid") is not None:
            raise InvalidArchError(f"space {self.name!r} has no elastic width; 'wid' must be null, got {obj['wid']!r}")
        flat: dict = {}
        for key, length in (("ks", self.n_slots), ("e", self.n_slots), ("d", len(self.stages))):
            values = obj.get(key)
            if not isinstance(values, list) or len(values) != length:
                got = f"a list of {len(values)}" if isinstance(values, list) else repr(values)
                raise InvalidArchError(f"{key!r} must be a list of {length} numbers, got {got}")
            flat.update({f"{key}_{i}": v for i, v in enumerate(values)})
        if "r" not in obj:
            raise InvalidArchError(f"missing 'r' (input resolution, one of {list(self.resolutions)})")
        r = obj["r"]
        if isinstance(r, list) and len(r) == 1:  # OFA's search code stores r as [R]
            r = r[0]
        flat["r"] = r
        return flat

    def to_ofa_dict(self, arch: ArchConfig) -> dict:
        """The arch in OFA's layout ``{"ks": [...], "e": [...], "d": [...], "r": R}``."""
        arch = self.validate(arch)
        return {
            "ks": [arch[f"ks_{i}"] for i in range(self.n_slots)],
            "e": [arch[f"e_{i}"] for i in range(self.n_slots)],
            "d": [arch[f"d_{s}"] for s in range(len(self.stages))],
            "r": arch["r"],
        }

    # ------------------------------------------------------------ layer table
    def block_labels(self) -> tuple[str, ...]:
        stages = [f"stage{s + 1}.block{j}" for s, stage in enumerate(self.stages) for j in range(stage.max_depth)]
        return ("stem", "block0", *stages, "head", "classifier")

    def active_block_labels(self, arch: ArchConfig) -> frozenset[str]:
        arch = self.validate(arch)
        stages = {f"stage{s + 1}.block{j}" for s in range(len(self.stages)) for j in range(arch[f"d_{s}"])}
        return frozenset({"stem", "block0", "head", "classifier"} | stages)

    def input_shape(self, arch: ArchConfig) -> tuple[int, int, int]:
        r = self.validate(arch)["r"]
        return (self.in_channels, r, r)

    def active_blocks(self, arch: ArchConfig) -> list[ActiveBlock]:
        """The elastic blocks that run for ``arch``, with resolved channels and input sizes."""
        arch = self.validate(arch)
        size = conv_out(arch["r"], 3, 2)  # after the stem; the first block keeps it
        channels = self.first_block_width
        blocks = []
        for s, stage in enumerate(self.stages):
            for j, slot in enumerate(list(self.slot_range(s))[: arch[f"d_{s}"]]):
                stride = stage.stride if j == 0 else 1
                mid = expanded_channels(channels, arch[f"e_{slot}"])
                kernel = arch[f"ks_{slot}"]
                blocks.append(ActiveBlock(
                    stage=s, index=j, slot=slot, in_channels=channels, mid_channels=mid,
                    out_channels=stage.width, kernel=kernel, stride=stride, act=stage.act,
                    se_channels=se_channels(mid) if stage.se else 0,
                    residual=stride == 1 and channels == stage.width, in_hw=(size, size),
                ))
                size = conv_out(size, kernel, stride)
                channels = stage.width
        return blocks

    def layers(self, arch: ArchConfig) -> list[LayerSpec]:
        arch = self.validate(arch)
        r = arch["r"]
        hw = (r, r)
        stem_hw = (conv_out(r, 3, 2),) * 2
        rows = [
            LayerSpec("conv", self.in_channels, self.stem_width, 3, 2, 1, hw, "hswish", bn=True, block="stem"),
            LayerSpec("dwconv", self.stem_width, self.stem_width, 3, 1, self.stem_width, stem_hw, "relu",
                      bn=True, block="block0"),
            LayerSpec("pwconv", self.stem_width, self.first_block_width, 1, 1, 1, stem_hw, "none", bn=True,
                      residual=self.stem_width == self.first_block_width, block="block0"),
        ]
        for b in self.active_blocks(arch):
            rows += _block_rows(b)
        feat = rows[-1].out_channels
        last_hw = rows[-1].out_hw
        rows += [
            LayerSpec("pwconv", feat, self.final_expand_width, 1, 1, 1, last_hw, "hswish", bn=True, block="head"),
            LayerSpec("gap", self.final_expand_width, self.final_expand_width, 1, 1, self.final_expand_width,
                      last_hw, block="head"),
            LayerSpec("pwconv", self.final_expand_width, self.last_channel, 1, 1, 1, (1, 1), "hswish",
                      block="head"),
            LayerSpec("linear", self.last_channel, self.num_classes, 1, 1, 1, (1, 1), bias=True,
                      block="classifier"),
        ]
        return rows


@lru_cache(maxsize=16384)
def _block_rows(b: ActiveBlock) -> tuple[LayerSpec, ...]:
    """The three rows of one inverted-residual block (cached: search builds many tables)."""
    name = f"stage{b.stage + 1}.block{b.index}"
    out_hw = (conv_out(b.in_hw[0], b.kernel, b.stride),) * 2
    return (
        LayerSpec("pwconv", b.in_channels, b.mid_channels, 1, 1, 1, b.in_hw, b.act, bn=True, block=name),
        LayerSpec("dwconv", b.mid_channels, b.mid_channels, b.kernel, b.stride, b.mid_channels, b.in_hw,
                  b.act, se_channels=b.se_channels, bn=True, block=name),
        LayerSpec("pwconv", b.mid_channels, b.out_channels, 1, 1, 1, out_hw, "none",
                  residual=b.residual, bn=True, block=name),
    )


def ofa_mbv3(*, num_classes: int = 1000, in_channels: int = 3) -> MobileNetV3Space:
    """OFA's ``OFAMobileNetV3(width_mult=1.0, ks_list=[3,5,7], expand_ratio_list=[3,4,6], depth_list=[2,3,4])``."""
    return MobileNetV3Space(
        name="ofa_mbv3",
        stages=[
            StageSpec(24, 4, 2, "relu", False),
            StageSpec(40, 4, 2, "relu", True),
            StageSpec(80, 4, 2, "hswish", False),
            StageSpec(112, 4, 1, "hswish", True),
            StageSpec(160, 4, 2, "hswish", True),
        ],
        kernel_sizes=(3, 5, 7), expand_ratios=(3, 4, 6), depths=(2, 3, 4),
        resolutions=(128, 160, 192, 224),
        stem_width=16, first_block_width=16, final_expand_width=960, last_channel=1280,
        num_classes=num_classes, in_channels=in_channels,
    )


def tiny_mbv3(*, num_classes: int = 10, in_channels: int = 1) -> MobileNetV3Space:
    """A narrow member of the same family for 24–32 px inputs (MNIST by default): fast tests."""
    return MobileNetV3Space(
        name="tiny_mbv3",
        stages=[
            StageSpec(16, 3, 2, "relu", False),
            StageSpec(24, 3, 2, "relu", True),
            StageSpec(40, 3, 2, "hswish", False),
            StageSpec(48, 3, 1, "hswish", True),
            StageSpec(64, 3, 2, "hswish", True),
        ],
        kernel_sizes=(3, 5, 7), expand_ratios=(3, 4, 6), depths=(1, 2, 3),
        resolutions=(24, 28, 32),
        stem_width=8, first_block_width=8, final_expand_width=192, last_channel=256,
        num_classes=num_classes, in_channels=in_channels,
    )

"""Elastic vision transformers (AutoFormer-style): ``autoformer_t`` and the MNIST-sized ``tiny_vit``.

Network: patch embedding (a ``patch``×``patch`` conv with stride ``patch``) → cls token + learned
position embedding → ``depth`` pre-norm transformer layers → layer norm → the cls token's features
→ linear classifier. A layer is ``x + proj(attention(norm1(x)))`` then ``x + fc2(gelu(fc1(norm2(x))))``.
The head dimension is fixed (``head_dim``), so the number of heads sets the q/k/v width
(``heads * head_dim``) independently of the embedding, as in AutoFormer.

Settings: ``patch`` (only where the space offers several), ``embed``, ``depth``, and per layer
slot ``heads_<i>`` and ``mlp_<i>`` (MLP ratio); layers beyond ``depth`` are ignored. Each block
of the layer table is one sub-layer: ``layer<i>.attn`` and ``layer<i>.mlp``, with ``embed`` and
``head``/``classifier`` around them.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import product
from numbers import Real
from typing import Iterable, Sequence

import numpy as np

from search_spaces.arch import ArchConfig
from search_spaces.choice import Choice
from search_spaces.elastic import ElasticFamily
from search_spaces.errors import InvalidArchError
from search_spaces.layers import LayerSpec


def _positive_ints(label: str, values: Sequence[int]) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"{label} must be a non-empty list of positive ints, got {list(values)!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{label} has repeated values: {list(values)!r}")
    return tuple(sorted(values))


def _mlp_ratios(values: Sequence[float], min_embed: int) -> tuple[float, ...]:
    """The sorted MLP ratios: finite real numbers (no bools), none repeated, the smallest giving the
    smallest embedding an MLP at least one unit wide (``round(embed * ratio) >= 1``, as ``mlp_hidden``)."""
    valid = (f"a non-empty list of distinct finite numbers (not bools) whose smallest times the smallest "
             f"embedding {min_embed} rounds to >= 1 (ratios > {0.5 / min_embed:g})")
    items = tuple(values) if isinstance(values, Iterable) and not isinstance(values, (str, bytes)) else None
    if not items or any(isinstance(m, bool) or not isinstance(m, Real) or not math.isfinite(m) for m in items):
        raise ValueError(f"mlp_ratios must be {valid}; got {values!r}")
    smallest = min(items)
    if round(min_embed * smallest) < 1:
        raise ValueError(f"mlp_ratios must be {valid}; got {list(items)!r}, whose smallest {smallest!r} gives "
                         f"embedding {min_embed} an MLP of {round(min_embed * smallest)} units")
    ratios = tuple(sorted(float(m) for m in items))
    if len(set(ratios)) != len(ratios):
        raise ValueError(f"mlp_ratios must be {valid}; got {list(items)!r}, which repeats a value")
    return ratios


class ViTSpace(ElasticFamily):
    """An elastic ViT family (see the module docstring). ``head_dim=None`` ties the head size to
    the embedding (``embed // heads``), which then must divide it for every option."""

    ELASTIC_DIMS = ("patch", "embed", "heads", "mlp", "depth")
    # Progressive shrinking: the full network, then the cheapest-to-share dims first (MLP width, heads),
    # then depth, embedding and patch size, which change every layer's input.
    SHRINK_STAGES = (("full", ()), ("mlp", ("mlp",)), ("heads", ("mlp", "heads")),
                     ("depth", ("mlp", "heads", "depth", "embed", "patch")))

    def __init__(self, *, name: str, resolution: int, patch_sizes: Sequence[int], embed_dims: Sequence[int],
                 depths: Sequence[int], heads: Sequence[int], mlp_ratios: Sequence[float],
                 head_dim: int | None, num_classes: int, in_channels: int, qkv_bias: bool = True,
                 version: str = "1") -> None:
        for label, value in (("resolution", resolution), ("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.patch_sizes = _positive_ints("patch_sizes", patch_sizes)
        self.embed_dims = _positive_ints("embed_dims", embed_dims)
        self.depths = _positive_ints("depths", depths)
        self.heads = _positive_ints("heads", heads)
        self.mlp_ratios = _mlp_ratios(mlp_ratios, min(self.embed_dims))
        bad_patch = [p for p in self.patch_sizes if resolution % p]
        if bad_patch:
            valid = [p for p in range(1, resolution + 1) if resolution % p == 0]
            raise ValueError(f"patch size(s) {bad_patch} do not divide the resolution {resolution}; "
                             f"valid patch sizes: {valid}")
        if head_dim is None:
            bad = sorted({(e, h) for e in self.embed_dims for h in self.heads if e % h})
            if bad:
                raise ValueError(f"heads must divide the embedding when head_dim is tied to it; "
                                 f"(embed, heads) pairs that do not: {bad}")
        elif not isinstance(head_dim, int) or isinstance(head_dim, bool) or head_dim < 1:
            raise ValueError(f"head_dim must be a positive int or None, got {head_dim!r}")
        self.resolution = resolution
        self.resolutions = (resolution,)
        self.head_dim = head_dim
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.qkv_bias = bool(qkv_bias)
        self.max_depth = max(self.depths)
        mlp_options = tuple(int(m) if float(m).is_integer() else m for m in self.mlp_ratios)
        # Patch options run from the largest patch to the smallest: more tokens is the larger network.
        params = [Choice("patch", self.patch_sizes[::-1])] if len(self.patch_sizes) > 1 else []
        params += [Choice("embed", self.embed_dims), Choice("depth", self.depths)]
        params += [Choice(f"heads_{i}", self.heads) for i in range(self.max_depth)]
        params += [Choice(f"mlp_{i}", mlp_options) for i in range(self.max_depth)]
        super().__init__(name, params, version=version)

    # ------------------------------------------------------------------ settings
    def patch(self, arch: ArchConfig) -> int:
        return arch["patch"] if len(self.patch_sizes) > 1 else self.patch_sizes[0]

    def tokens(self, arch: ArchConfig) -> int:
        """Tokens a layer sees: the patches plus the cls token."""
        return (self.resolution // self.patch(arch)) ** 2 + 1

    def attention_width(self, arch: ArchConfig, layer: int) -> int:
        """Width of q (and of k, v): ``heads * head_dim``."""
        heads = arch[f"heads_{layer}"]
        return heads * (self.head_dim if self.head_dim is not None else arch["embed"] // heads)

    def mlp_hidden(self, arch: ArchConfig, layer: int) -> int:
        return int(round(arch["embed"] * arch[f"mlp_{layer}"]))

    def with_resolution(self, arch: ArchConfig, resolution: int) -> ArchConfig:
        if resolution != self.resolution:
            raise InvalidArchError(f"space {self.name!r} runs at resolution {self.resolution} only, got {resolution}")
        return self.validate(arch)

    def covering_archs(self, resolutions=None) -> list[ArchConfig]:
        """A layer's rows depend on (patch, embedding, heads, MLP ratio): full-depth archs carrying
        every (heads, MLP ratio) pair over their layer slots, per patch size and embedding."""
        if resolutions is not None and set(resolutions) - {self.resolution}:
            raise InvalidArchError(f"space {self.name!r} runs at resolution {self.resolution} only, got {list(resolutions)}")
        pairs = list(product(self.heads, self.params[self.names.index("mlp_0")].options))
        depth, archs = self.max_depth, []
        for patch in self.patch_sizes:
            for embed in self.embed_dims:
                for start in range(0, len(pairs), depth):
                    chunk = pairs[start:start + depth]
                    chunk += [chunk[-1]] * (depth - len(chunk))
                    flat = {"patch": patch, "embed": embed, "depth": depth}
                    flat.update({f"heads_{i}": h for i, (h, _) in enumerate(chunk)})
                    flat.update({f"mlp_{i}": m for i, (_, m) in enumerate(chunk)})
                    archs.append(self.parse({k: v for k, v in flat.items() if k in self.names}))
        return archs

    def _to_flat(self, obj) -> dict:
        """Settings of layer slots past ``depth`` may be left out: the network ignores them."""
        flat = dict(obj)
        depth = flat.get("depth")
        if isinstance(depth, int) and not isinstance(depth, bool) and 0 <= depth <= self.max_depth:
            for p in self.params:
                kind, _, slot = p.name.partition("_")
                if kind in ("heads", "mlp") and int(slot) >= depth:
                    flat.setdefault(p.name, p.default)
        return flat

    def inactive(self, arch: ArchConfig) -> frozenset[str]:
        return frozenset(f"{kind}_{i}" for i in range(arch["depth"], self.max_depth) for kind in ("heads", "mlp"))

    def sample_elastic(self, rng, dims) -> ArchConfig:
        """A random canonical arch in which only the settings of ``dims`` (a subset of
        ``ELASTIC_DIMS``) vary, each uniformly over its options; the rest are at their maximum.
        Every setting is drawn first and canonicalised last, so a slot the drawn depth switches off
        does not skew what it holds when depth is closed (``ElasticFamily.sample_elastic`` starts
        from a canonical ``sample()``, whose switched-off slots all hold their smallest option)."""
        dims = set(dims)
        unknown = dims - set(self.ELASTIC_DIMS)
        if unknown:
            raise ValueError(f"unknown elastic dims {sorted(unknown)}; valid: {list(self.ELASTIC_DIMS)}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"sample_elastic() needs a numpy.random.Generator, got {type(rng).__name__}")
        codes = [int(rng.integers(len(p))) if p.name.split("_")[0] in dims else len(p) - 1 for p in self.params]
        return self.canonicalize(self.decode(codes))

    # ---------------------------------------------------------------- layer table
    def input_shape(self, arch: ArchConfig) -> tuple[int, int, int]:
        self.validate(arch)
        return (self.in_channels, self.resolution, self.resolution)

    def block_labels(self) -> tuple[str, ...]:
        layers = [f"layer{i}.{part}" for i in range(self.max_depth) for part in ("attn", "mlp")]
        return ("embed", *layers, "head", "classifier")

    def active_block_labels(self, arch: ArchConfig) -> frozenset[str]:
        arch = self.validate(arch)
        layers = {f"layer{i}.{part}" for i in range(arch["depth"]) for part in ("attn", "mlp")}
        return frozenset({"embed", "head", "classifier"} | layers)

    def layers(self, arch: ArchConfig) -> list[LayerSpec]:
        arch = self.validate(arch)
        patch, embed, tokens = self.patch(arch), arch["embed"], self.tokens(arch)
        rows = [
            LayerSpec("patch_embed", self.in_channels, embed, patch, patch, 1, (self.resolution,) * 2, bias=True,
                      block="embed"),
            LayerSpec("tokens", embed, embed, 1, 1, 1, (tokens - 1, 1), block="embed"),
        ]
        for i in range(arch["depth"]):
            heads = arch[f"heads_{i}"]
            rows += _transformer_rows(i, embed, tokens, heads, self.attention_width(arch, i),
                                      self.mlp_hidden(arch, i), self.qkv_bias)
        rows += [
            LayerSpec("layernorm", embed, embed, 1, 1, 1, (tokens, 1), block="head"),
            LayerSpec("linear", embed, self.num_classes, 1, 1, 1, (1, 1), bias=True, block="classifier"),
        ]
        return rows


@lru_cache(maxsize=4096)
def _transformer_rows(index: int, embed: int, tokens: int, heads: int, width: int, hidden: int,
                      qkv_bias: bool) -> tuple[LayerSpec, ...]:
    """The nine rows of one pre-norm transformer layer (cached: search builds many tables)."""
    seq = (tokens, 1)
    attn, mlp = f"layer{index}.attn", f"layer{index}.mlp"
    return (
        LayerSpec("layernorm", embed, embed, 1, 1, 1, seq, block=attn),
        LayerSpec("linear", embed, 3 * width, 1, 1, 1, seq, bias=qkv_bias, block=attn),
        LayerSpec("matmul", width, heads * tokens, 1, 1, heads, seq, block=attn),
        LayerSpec("softmax", heads * tokens, heads * tokens, 1, 1, 1, seq, block=attn),
        LayerSpec("matmul", heads * tokens, width, 1, 1, heads, seq, block=attn),
        LayerSpec("linear", width, embed, 1, 1, 1, seq, bias=True, residual=True, block=attn),
        LayerSpec("layernorm", embed, embed, 1, 1, 1, seq, block=mlp),
        LayerSpec("linear", embed, hidden, 1, 1, 1, seq, "gelu", bias=True, block=mlp),
        LayerSpec("linear", hidden, embed, 1, 1, 1, seq, bias=True, residual=True, block=mlp),
    )


def autoformer_t(*, num_classes: int = 1000, in_channels: int = 3) -> ViTSpace:
    """AutoFormer-T's supernet space (Chen et al. 2021, Table 1): ImageNet, 224 px, patch 16."""
    return ViTSpace(name="autoformer_t", resolution=224, patch_sizes=(16,), embed_dims=(192, 216, 240),
                    depths=(12, 13, 14), heads=(3, 4), mlp_ratios=(3.5, 4.0), head_dim=64,
                    num_classes=num_classes, in_channels=in_channels)


def tiny_vit(*, num_classes: int = 10, in_channels: int = 1) -> ViTSpace:
    """The same family sized for the embedded MNIST at 28 px on 2 CPU cores. Patch {4, 7} are the
    divisors of 28 giving 49 or 16 tokens; embed 16–64 with head dim 16, so 1–4 heads fit; the
    largest subnet trains to ~91% val top-1 on mnist-mini in 30 epochs (3 min on 2 cores), the
    smallest to ~33%."""
    return ViTSpace(name="tiny_vit", resolution=28, patch_sizes=(4, 7), embed_dims=(16, 32, 48, 64),
                    depths=(1, 2, 3, 4), heads=(1, 2, 4), mlp_ratios=(1, 2, 4), head_dim=16,
                    num_classes=num_classes, in_channels=in_channels)

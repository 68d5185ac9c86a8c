"""Load an original Once-for-All MobileNetV3 checkpoint into ``OFAMobileNetV3Supernet``.

OFA's ``OFAMobileNetV3(width_mult=1.0, ks_list=[3,5,7], expand_ratio_list=[3,4,6],
depth_list=[2,3,4])`` and our ``create_supernet("ofa_mbv3")`` hold the same 475 tensors under
different names; the translation is rule-based (``ofa_key_for``). OFA's ``blocks.0`` is our
``first_block`` and OFA's ``blocks.<i+1>`` is our block slot ``blocks.<i>``.

Special cases, handled explicitly:
- ``num_batches_tracked``: OFA's BNs have it and so do ours, so it maps 1:1. It is the only key a
  checkpoint may omit (old PyTorch wrote none); a missing one is set to 0, as PyTorch's own
  BatchNorm does for such checkpoints. It never changes an eval-mode output.
- ``.mobile_inverted_conv.``: older OFA code (and, by OFA's own loader, its released files) used
  this name for what is now ``.conv.``; both spellings are accepted.
- Not in any state dict, so not loaded: OFA's BN momentum/eps (0.1, 1e-5, equal to ours), the
  dropout rate (0.1 in both), and OFA's active-subnet settings (use ``supernet.active(...)``).
OFA's checkpoint holds nothing else without a counterpart here.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from search_spaces import NASError
from supernets.mbv3 import OFAMobileNetV3Supernet

_BLOCK = re.compile(r"blocks\.(\d+)\.")
# (our prefix, OFA prefix) for layers outside the elastic blocks
_FIXED = (
    ("stem.0.", "first_conv.conv."), ("stem.1.", "first_conv.bn."),
    ("first_block.depthwise.0.", "blocks.0.conv.depth_conv.conv."),
    ("first_block.depthwise.1.", "blocks.0.conv.depth_conv.bn."),
    ("first_block.project.0.", "blocks.0.conv.point_linear.conv."),
    ("first_block.project.1.", "blocks.0.conv.point_linear.bn."),
    ("final_expand.0.", "final_expand_layer.conv."), ("final_expand.1.", "final_expand_layer.bn."),
    ("feature_mix.0.", "feature_mix_layer.conv."), ("classifier.", "classifier.linear."),
)
# (our module inside an elastic block, OFA module inside DynamicMBConvLayer ``blocks.<i+1>.conv``)
_IN_BLOCK = (
    ("expand.", "inverted_bottleneck.conv.conv."), ("expand_bn.", "inverted_bottleneck.bn.bn."),
    ("depthwise.", "depth_conv.conv.conv."), ("depthwise_bn.", "depth_conv.bn.bn."),
    ("se.", "depth_conv.se.fc."), ("project.", "point_linear.conv.conv."),
    ("project_bn.", "point_linear.bn.bn."),
)
_LEGACY = (".mobile_inverted_conv.", ".conv.")


class CheckpointMismatchError(NASError, ValueError):
    """An OFA state dict does not fit the supernet (missing, unexpected or wrongly shaped key)."""


def ofa_key_for(our_key: str) -> str:
    """OFA's name for one of our state-dict keys; ``ValueError`` if no rule covers it."""
    for ours, theirs in _FIXED:
        if our_key.startswith(ours):
            return theirs + our_key[len(ours):]
    match = _BLOCK.match(our_key)
    if match:
        rest = our_key[match.end():]
        head = f"blocks.{int(match.group(1)) + 1}.conv."
        if rest.startswith("depthwise.transforms."):  # 7to5 / 5to3 kernel-transform matrices
            return f"{head}depth_conv.conv.{rest[len('depthwise.transforms.'):]}_matrix"
        for ours, theirs in _IN_BLOCK:
            if rest.startswith(ours):
                return head + theirs + rest[len(ours):]
    raise ValueError(f"no OFA name for supernet key {our_key!r}")


def ofa_key_map(supernet: OFAMobileNetV3Supernet) -> dict[str, str]:
    """``{OFA key: our key}`` for every parameter and buffer of ``supernet``."""
    mapping = {ofa_key_for(key): key for key in supernet.state_dict()}
    if len(mapping) != len(supernet.state_dict()):
        raise ValueError("two supernet keys map to the same OFA key")
    return mapping


def _unwrap(state_dict: Mapping) -> Mapping:
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        return state_dict["state_dict"]
    return state_dict


def translate_ofa_state_dict(supernet: OFAMobileNetV3Supernet, state_dict: Mapping) -> dict[str, torch.Tensor]:
    """OFA's state dict (optionally wrapped as ``{"state_dict": ...}``) under our keys.

    Every OFA key must be used and every one of our keys filled with a tensor of our shape
    (``num_batches_tracked`` may be absent: then 0); otherwise ``CheckpointMismatchError``.
    """
    mapping = ofa_key_map(supernet)
    ours = supernet.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in _unwrap(state_dict).items():
        name = key.replace(*_LEGACY) if key not in mapping else key
        if name not in mapping:
            raise CheckpointMismatchError(
                f"unexpected key {key!r} in the OFA checkpoint: no counterpart in {type(supernet).__name__}")
        target = mapping[name]
        if target in out:
            raise CheckpointMismatchError(f"OFA checkpoint key {key!r} duplicates another spelling of {name!r}")
        expected = list(ours[target].shape)
        if not isinstance(value, torch.Tensor) or list(value.shape) != expected:
            got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointMismatchError(
                f"OFA checkpoint key {key!r} has shape {got}, expected {expected} (our {target!r})")
        out[target] = value
    for name, target in mapping.items():
        if target in out:
            continue
        if target.endswith(".num_batches_tracked"):
            out[target] = torch.zeros_like(ours[target])
            continue
        raise CheckpointMismatchError(
            f"OFA checkpoint is missing key {name!r} (expected shape {list(ours[target].shape)}, "
            f"for our {target!r})")
    return out


def load_ofa_state_dict(supernet: OFAMobileNetV3Supernet, state_dict: Mapping) -> None:
    """Copy an OFA MobileNetV3 supernet checkpoint into ``supernet`` (strict; see module doc).

    ``state_dict`` is what ``torch.load(path, weights_only=True)`` returns for OFA's released
    files (``{"state_dict": {...}}``) or the bare ``OFAMobileNetV3.state_dict()``. Nothing is
    changed when it raises ``CheckpointMismatchError``. The active arch is kept.
    """
    supernet.load_state_dict(translate_ofa_state_dict(supernet, state_dict), strict=True)

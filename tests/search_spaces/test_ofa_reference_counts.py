"""MACs and params of ofa_mbv3 subnets against Once-for-All's own counter.

``data/ofa_reference_counts.jsonl`` was produced by running MIT Han Lab's original
once-for-all code (commit 80a2e26: ``OFAMobileNetV3(width_mult=1.0, ks_list=[3,5,7],
expand_ratio_list=[3,4,6], depth_list=[2,3,4])``, ``set_active_subnet`` → ``get_active_subnet``
→ ``count_net_flops``/``count_parameters``) on 30 random configs plus the largest and smallest.
OFA sums MACs in float32, which is off by up to 32 above 2^24, so ``macs_exact`` is the same
per-layer formula summed in integers; ``ofa_count_net_flops`` is OFA's raw figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hw_profiles import macs, params
from search_spaces import get_space

REFERENCE = [json.loads(line) for line in (Path(__file__).parent / "data" / "ofa_reference_counts.jsonl").open()]


@pytest.mark.parametrize("ref", REFERENCE, ids=lambda ref: f"r{ref['config']['r']}-d{''.join(map(str, ref['config']['d']))}")
def test_layer_table_counts_equal_ofa_counter(ref):
    space = get_space("ofa_mbv3")
    rows = space.layers(space.parse(ref["config"]))
    assert macs(rows) == ref["macs_exact"]
    assert abs(macs(rows) - ref["ofa_count_net_flops"]) <= 64  # OFA's float32 sum
    assert params(rows) == ref["params"]


def test_reference_covers_every_resolution_and_the_extremes():
    assert {ref["config"]["r"] for ref in REFERENCE} == {128, 160, 192, 224}
    assert any(ref["config"]["ks"] == [7] * 20 and ref["config"]["d"] == [4] * 5 for ref in REFERENCE)

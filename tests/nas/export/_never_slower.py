"""The never-slower rule (``kernels.tvm.select``) as a report shows it: shared by the export tests of the
float and the int8 TVM builds. (pytest puts this folder on ``sys.path``: tests import it as ``_never_slower``.)"""

from __future__ import annotations

from kernels.tvm.select import AB_MARGIN


def assert_never_slower(tvm_schedule: str, tuning: dict) -> None:
    """``tuning`` (a report's ``tuning`` entry) chose ``tvm_schedule`` by the rule: every task with a record was
    a candidate, and the tuned build was kept only when it beat the default build by more than ``AB_MARGIN``."""
    selection = tuning["selection"]
    assert tvm_schedule == selection["chosen"] in ("metaschedule-db", "default")
    assert selection["records_candidate"] == tuning["tasks_hit"] > 0
    if selection["chosen"] == "metaschedule-db":
        assert 0 < selection["records_kept"]
        # to_dict rounds the medians to 1e-4 ms: the same slack on both sides of the rule
        assert selection["tuned_ms"]["median"] < selection["default_ms"]["median"] * (1 - AB_MARGIN) + 1e-3
    else:
        # the default wins ties: the tuned build had to be more than AB_MARGIN faster
        assert selection["records_kept"] == 0 or (selection["tuned_ms"]["median"]
                                                  >= selection["default_ms"]["median"] * (1 - AB_MARGIN) - 1e-3)

"""The quantization-drop predictor: features, non-negative per-block sensitivities, persistence."""

import json

import numpy as np
import pytest

from predictors.errors import NotFittedError
from predictors.quantization import QuantDropPredictor, drop_features
from search_spaces import QuantPolicy, get_space


@pytest.fixture(scope="module")
def space():
    return get_space("tiny_mbv3+q")


def test_features_are_int8_mac_shares(space):
    net = space.base.largest()
    int8 = space.combine(net, QuantPolicy.uniform(space.labels, "int8"))
    fp32 = space.combine(net, QuantPolicy.uniform(space.labels, "fp32"))
    X = drop_features(space, [int8, fp32])
    n = len(space.labels)
    assert X.shape == (2, n + 3)
    assert X[0, :n].sum() == pytest.approx(1.0) and X[0, n] == pytest.approx(1.0)
    assert not X[1].any()  # the float network: nothing quantized, no drop
    shallow = space.combine(space.base.smallest(), QuantPolicy.uniform(space.labels, "int8"))
    assert drop_features(space, [shallow])[0, space.labels.index("stage1.block2")] == 0.0  # switched off


def test_fit_recovers_a_sensitive_block_and_pins_float_to_zero(space):
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(60)]
    X = drop_features(space, archs)
    sensitivity = np.zeros(X.shape[1])
    sensitivity[space.labels.index("head")] = 0.2  # only the head hurts when quantized
    y = X @ sensitivity + rng.normal(0, 0.001, len(X))
    model = QuantDropPredictor(seed=1).fit(X, y)
    mean, var = model.predict_dist(X)
    assert np.corrcoef(mean, y)[0, 1] > 0.95 and (var > 0).all()
    assert (model.coefs_ >= 0).all()
    fp32 = space.combine(space.base.largest(), QuantPolicy.uniform(space.labels, "fp32"))
    assert model.predict(drop_features(space, [fp32]))[0] == 0.0
    again = QuantDropPredictor.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_unfitted_is_unknown_and_bad_input_is_refused(space):
    model = QuantDropPredictor()
    mean, var = model.predict_dist(np.zeros((2, 5)))
    assert (mean == 0).all() and np.isinf(var).all()
    with pytest.raises(NotFittedError):
        model.to_dict()
    with pytest.raises(ValueError, match="non-finite"):
        model.fit(np.zeros((3, 2)), [0.1, np.nan, 0.0])
    with pytest.raises(ValueError, match="n_members"):
        QuantDropPredictor(n_members=0)
    with pytest.raises(ValueError, match="non-negative"):
        QuantDropPredictor.from_dict({"format": 1, "kind": "quant_drop", "seed": 0, "n_members": 1, "alpha": 1.0,
                                      "coefs": [[-1.0, 0.0]]})

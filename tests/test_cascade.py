"""The cascade study (train/cascade.py): band arithmetic and the pre-registered choice."""

import numpy as np
import pytest

from ecg.decision import calibrate
from ecg.features import RR_FEATURE_NAMES
from train.cascade import band, cascade_p, choose, raw_threshold_logit, study


def test_the_band_straddles_the_raw_threshold_of_any_calibration():
    decision = {"calibration": {"a": 0.7, "b": -1.3}, "threshold": 0.42}
    t = 1 / (1 + np.exp(-raw_threshold_logit(decision)))
    assert calibrate(np.array([t]), decision["calibration"])[0] == pytest.approx(0.42, abs=1e-6)
    low, high = band(decision, 2.0, 3.0)
    assert low < t < high
    assert np.log(low / (1 - low)) == pytest.approx(np.log(t / (1 - t)) - 2.0)
    assert np.log(high / (1 - high)) == pytest.approx(np.log(t / (1 - t)) + 3.0)


def test_cascade_keeps_the_first_member_outside_the_band_only():
    members = np.array([[0.01, 0.03], [0.4, 0.8], [0.99, 0.5]])
    p, sent = cascade_p(members[:, 0], members, 0.05, 0.95)
    assert sent.tolist() == [False, True, False]
    assert p.tolist() == [0.01, pytest.approx(0.6), 0.99]


def _oof(rng, n, noise_first):
    """Synthetic nested predictions: 4 members around a shared score; member 0 noisier."""
    y = (rng.random(n) < 0.1).astype(np.int8)
    score = np.where(y == 1, 2.5, -2.5) + rng.normal(0, 1.5, n)
    logits = score[:, None] + rng.normal(0, 0.3, (n, 4))
    logits[:, 0] += rng.normal(0, noise_first, n)
    features = np.zeros((n, len(RR_FEATURE_NAMES)), np.float32)
    features[:, RR_FEATURE_NAMES.index("qrs_width_s")] = 0.2  # wide: the RuleGuard never flips
    return {"p_members": 1 / (1 + np.exp(-logits)), "y": y, "features": features}


def test_a_faithful_first_member_gets_a_narrow_band_and_a_noisy_one_a_wider_one():
    rng = np.random.default_rng(0)
    faithful = study([_oof(rng, 4000, 0.0), _oof(rng, 4000, 0.0)])
    noisy = study([_oof(rng, 4000, 2.0), _oof(rng, 4000, 2.0)])
    a, b = choose(faithful), choose(noisy)
    assert a is not None and b is not None
    assert a["sent"] < b["sent"]  # more beats need the other members when the first is unreliable
    widest = max(noisy, key=lambda r: r["sent"])
    narrowest = min(noisy, key=lambda r: r["sent"])
    assert narrowest["changed"] > widest["changed"]  # the band trades CPU for agreement
    assert choose(noisy, max_changed=0.0, max_f1_loss=0.0) in (None, *[r for r in noisy if r["changed"] == 0])

import numpy as np

from ecg.decision import calibrate, classify, fit_platt, logit, ruleguard_mask
from ecg.features import RR_FEATURE_NAMES


def test_platt_recovers_known_parameters():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    p_raw = 1 / (1 + np.exp(-z))
    y = rng.random(len(z)) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))
    c = fit_platt(p_raw, y)
    assert abs(c["a"] - 0.5) < 0.05 and abs(c["b"] + 1.0) < 0.08
    assert np.allclose(calibrate(p_raw, {"a": 1.0, "b": 0.0}), p_raw, atol=1e-6)
    assert np.allclose(logit([0.5]), [0.0])


def _features(rr_prev, rr_next, qrs):
    f = np.zeros((len(rr_prev), len(RR_FEATURE_NAMES)), np.float32)
    f[:, RR_FEATURE_NAMES.index("rr_prev_ratio")] = rr_prev
    f[:, RR_FEATURE_NAMES.index("rr_next_ratio")] = rr_next
    f[:, RR_FEATURE_NAMES.index("qrs_width_s")] = qrs
    return f


def test_ruleguard_flips_only_on_time_narrow_beats():
    f = _features([1.0, 0.7, 1.02, 1.0], [1.0, 1.3, 0.98, 1.0], [0.07, 0.07, 0.14, 0.07])
    rule = {"enabled": True, "rr_tolerance": 0.1, "max_qrs_width_s": 0.1}
    assert ruleguard_mask(f, rule).tolist() == [True, False, False, True]
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": rule}
    p = np.array([0.9, 0.9, 0.9, 0.2])
    is_v, p_v, flipped = classify(p, f, decision)
    assert is_v.tolist() == [False, True, True, False]
    assert flipped.tolist() == [True, False, False, False]
    assert classify(p, f, decision, apply_ruleguard=False)[0].tolist() == [True, True, True, False]

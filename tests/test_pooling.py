"""train.pooling: the pre-registered cross-validation and the served setting, on synthetic
out-of-fold evidence; convert.promote puts the setting into the card."""

import numpy as np

from train.data import DS1
from train.pooling import components_pooled, cross_validated, served_setting


def _evidence(seed=0):
    """DS1-shaped evidence: strips of 12 beats, PVCs of one shape per strip whose logits the
    'network' scatters around the threshold, normal beats of another shape."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-1, 1, 72)
    shapes = {False: np.exp(-(t / 0.1) ** 2), True: np.sin(3 * t) * np.exp(-(t / 0.5) ** 2)}
    records, groups, y = [], [], []
    for r in sorted(DS1):
        for _ in range(8):  # strips
            v = rng.random(12) < 0.25
            records += [r] * 12
            groups += [len(groups) // 12] * 12
            y += v.tolist()
    y = np.array(y)
    windows = np.zeros((len(y), 360, 2), np.float32)
    windows[:, 144:216, 0] = np.stack([shapes[bool(v)] for v in y]) + rng.normal(0, 0.05, (len(y), 72))
    logits = np.where(y, 0.5, -2.0) + rng.normal(0, 1.5, len(y))
    return {"y": y, "records": np.array(records), "features": np.ones((len(y), 16), np.float32),
            "windows": windows, "groups": np.array(groups), "logits": logits,
            "decision": {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": {"enabled": False}}}


def _records_reversed(ev):
    """The same evidence with its records in reverse order, as a run's npz may order them:
    each group still one run of beats, the labels no longer increasing."""
    order = np.concatenate([np.flatnonzero(ev["records"] == r) for r in sorted(set(ev["records"]), reverse=True)])
    return {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in ev.items()}


def test_pooling_wins_the_cross_validation_when_labels_follow_the_shape():
    result = cross_validated(_records_reversed(_evidence()), groupings=("neighbours",))
    assert result["gain"] > 0.05
    assert result["pooled"]["cv_f1_V"] > 0.9 > result["baseline"]["cv_f1_V"]
    assert all(c[0] == "neighbours" for c in result["pooled"]["chosen"])


def test_the_served_setting_and_the_study_only_grouping():
    ev = _evidence(1)
    setting = served_setting(ev)
    assert setting["val_f1_V"] > setting["val_f1_V_without"]
    assert setting["min_corr"] in (0.85, 0.9, 0.95) and 0.05 <= setting["threshold"] <= 0.95
    # connected components: here the two shapes never chain, so each strip's PVCs share a mean
    pooled = components_pooled(ev["logits"], ev["windows"], ev["groups"], 0.9, 0.0)
    first = ev["groups"] == 0
    for kind in (True, False):
        sel = first & (ev["y"] == kind)
        if sel.any():
            assert np.allclose(pooled[sel], ev["logits"][sel].mean())


def test_promotion_writes_the_pooling_and_its_threshold_into_the_card():
    import pytest

    from convert.promote import pooling_part

    chosen = {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216], "threshold": 0.25,
              "chosen_on": {"run": "r"}}
    part, threshold = pooling_part(chosen, {"threshold": 0.34}, "r")
    assert threshold == 0.25 and part["chosen_on"]["threshold_without"] == 0.34
    assert set(part) == {"min_corr", "own_weight", "core_samples", "chosen_on"}
    # an incomplete setting stops the promotion, not the service after it
    with pytest.raises(KeyError):
        pooling_part({k: v for k, v in chosen.items() if k != "core_samples"}, {"threshold": 0.34}, "r")
    # a threshold tuned on another run's probabilities is refused

    from convert.promote import PromotionError

    with pytest.raises(PromotionError, match="chosen on run r, not s"):
        pooling_part(chosen, {"threshold": 0.34}, "s")


def test_the_record_wide_test_joins_each_records_strips():
    from train.pooling import cross_validated_record_wide, record_pools

    ev = _records_reversed(_evidence(2))
    groups = record_pools(ev["records"])
    assert len(np.unique(groups)) == len(DS1)
    assert all(len(np.unique(ev["records"][groups == g])) == 1 for g in np.unique(groups))
    group_wide, either, chosen = cross_validated_record_wide(ev)
    assert len(chosen) == 5 and all(c[0] in ("group", "record") for c in chosen)
    assert 0.5 < group_wide <= 1 and 0.5 < either <= 1


def test_the_signal_wide_setting_pools_each_record_and_goes_into_the_card():
    from convert.promote import pooling_part
    from train.pooling import POOL_SIZE_BEATS, SIGNAL_BOUNDS, pooling_card

    ev = _evidence(3)
    setting = served_setting(ev, signal_wide=True)
    assert setting["pool_size_beats"] == POOL_SIZE_BEATS
    assert setting["min_corr"] in SIGNAL_BOUNDS and setting["val_f1_V"] > setting["val_f1_V_without"]
    # a record's PVCs across its strips share one mean: better than the strip's on this evidence
    assert setting["val_f1_V"] >= served_setting(ev)["val_f1_V"]
    part, _ = pooling_part({**pooling_card(setting), "threshold": setting["threshold"], "chosen_on": {"run": "r"}},
                           {"threshold": 0.34}, "r")
    assert part["pool_size_beats"] == POOL_SIZE_BEATS

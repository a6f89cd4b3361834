"""train.evaluate: the threshold scan and the one DS2 scoring that training, the cascade and
pooling studies and promotion share."""

import numpy as np
import pytest

from ecg.ec57 import count_metrics, f1_from_counts
from train.evaluate import THRESHOLDS, best_f1_threshold, score_ds2


def test_f1_from_counts_takes_numbers_and_arrays_and_is_count_metrics_f1():
    assert f1_from_counts(3, 1, 2) == count_metrics(3, 1, 2, 10)["F1"] == 6 / 9
    assert np.isnan(f1_from_counts(0, 0, 0))
    np.testing.assert_array_equal(f1_from_counts(np.array([3, 0]), np.array([1, 2]), np.array([2, 0])), [6 / 9, 0.0])


def test_the_threshold_scan_agrees_with_one_threshold_at_a_time():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        y = rng.random(2000) < 0.2
        p = np.round(np.clip(np.where(y, 0.6, 0.3) + rng.normal(0, 0.2, 2000), 0, 1), 2).astype(dtype)  # ties
        best = (0.5, -1.0)
        for t in THRESHOLDS:  # the lowest threshold wins a tie
            pred = p >= t
            f1 = f1_from_counts(np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y))
            if f1 > best[1] + 1e-9:
                best = (float(t), f1)
        assert best_f1_threshold(p, y) == best
    assert best_f1_threshold(np.zeros(3), np.zeros(3, bool))[1] == 0.0  # no V at all: F1 0, not NaN


def test_score_ds2_scores_every_classifier_on_the_same_beats_three_ways(fixture_dir):
    seen = []

    def label(beats, evaluation):
        seen.append((evaluation, len(beats)))
        truth = np.where(beats.labels == "V", "V", "N")  # the reference's own labels (false detections: N)
        return {"truth": truth, "all N": np.full(len(beats), "N")}

    metrics, rows = score_ds2(label, ["233"], fixture_dir, 10.0)
    assert [e for e, _ in seen] == ["test", "e2e", "e2e_strip"]
    truth = metrics["truth"]
    for prefix in ("test", "e2e", "e2e_strip"):
        assert truth[f"{prefix}_f1_V"] == pytest.approx(1.0)
        assert metrics["all N"][f"{prefix}_recall_V"] == 0.0
    assert truth["test_TP"] > 0 and truth["e2e_qrs_se"] > 0.99
    assert [r["evaluation"] for r in rows["truth"]] == ["e2e", "e2e_strip"]  # one row per record each
    only = score_ds2(label, ["233"], fixture_dir, 10.0, evaluations=("test",))[0]["truth"]
    assert only == {k: v for k, v in truth.items() if k.startswith("test_")}

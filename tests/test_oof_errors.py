"""train.oof_errors: the DS1 error report's counts, run lengths and per-record bound."""

import numpy as np

from train.oof_errors import oracle_per_record, per_record, recall_by_run_length, report, run_lengths

RECORDS = np.array(["a"] * 6 + ["b"] * 6)
# record a: a run of 3, then a V beat alone at its end; record b starts with a V beat, which
# does not continue a's (a run never crosses records), and holds a couplet
Y = np.array([0, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0], bool)


def test_run_lengths_stop_at_record_boundaries():
    assert run_lengths(Y, RECORDS).tolist() == [0, 3, 3, 3, 0, 1, 1, 0, 0, 2, 2, 0]


def test_per_record_counts_and_order():
    is_v = np.array([0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0], bool)
    rows = per_record(is_v, Y, RECORDS)
    assert rows[0] == ("a", 4, 2, 1, 2, 2 * 2 / (4 + 1 + 2))  # most errors first
    assert rows[1][:5] == ("b", 3, 3, 0, 0)


def test_recall_by_run_length():
    is_v = np.array([0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0], bool)
    rows = dict((label, (n, r)) for label, n, r in recall_by_run_length(is_v, Y, RECORDS))
    assert rows["1"] == (2, 0.5) and rows["2"] == (2, 1.0) and rows["3-9"] == (3, 2 / 3)
    assert rows["10+"][0] == 0


def test_the_oracle_bound_beats_any_single_threshold():
    rng = np.random.default_rng(0)
    records = np.repeat(np.array(["r1", "r2", "r3"]), 200)
    y = rng.random(600) < 0.2
    shift = np.repeat([0.3, 0.0, -0.3], 200)  # each record wants another threshold
    p = np.clip(0.5 * y + 0.25 + shift + rng.normal(0, 0.1, 600), 0, 1)
    single = max(2 * np.sum((p >= t) & y) / (np.sum(p >= t) + y.sum()) for t in np.linspace(0.01, 0.99, 99))
    assert oracle_per_record(p, y, records) > single + 0.05


def test_report_reads_an_oof_set():
    n = len(Y)
    oof = {"p_members": np.where(Y, 0.9, 0.1)[:, None].repeat(2, axis=1).astype(np.float32),
           "y": Y.astype(np.float32), "records": RECORDS, "features": np.ones((n, 16), np.float32)}
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": {"enabled": False}}
    text = report(oof, decision)
    assert "TP 7 FP 0 FN 0, F1 of V 1.0000" in text

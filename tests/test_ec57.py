import numpy as np

from ecg.ec57 import binary_metrics, detection_stats, end_to_end_metrics, in_ranges, match_beats


def test_match_is_one_to_one_and_closest_first():
    ref = np.array([100, 200, 300])
    test = np.array([105, 110, 290, 600])
    ri, ti = match_beats(ref, test, 54)
    assert list(zip(ri, ti)) == [(0, 0), (2, 2)]  # 110 loses to the closer 105 and 200 is > 54 away


def test_match_tolerance_is_inclusive_and_order_free():
    ri, ti = match_beats([1000, 10], [1054, 65], 54)
    assert list(zip(ri.tolist(), ti.tolist())) == [(0, 0)]  # 54 matches, 55 does not


def test_in_ranges():
    mask = in_ranges([5, 10, 15, 30], [[10, 20]])
    assert mask.tolist() == [False, True, True, False]


def test_in_ranges_that_overlap_or_nest():
    # a long range holding a short one that starts later (flutter within a stretch left out)
    samples = [5, 12, 25, 35, 45, 55]
    assert in_ranges(samples, [[10, 50], [20, 30]]).tolist() == [False, True, True, True, True, False]
    assert in_ranges(samples, [[20, 30], [10, 50]]).tolist() == [False, True, True, True, True, False]
    assert in_ranges(samples, [[10, 30], [25, 40]]).tolist() == [False, True, True, True, False, False]


def test_detection_stats_with_exclusion():
    ref = np.arange(0, 36000, 360)
    test = np.r_[ref[:50] + 5, ref[60:] - 3, [180]]  # 10 missed, one false
    s = detection_stats(ref, test, 360)
    assert (s["TP"], s["FN"], s["FP"]) == (90, 10, 1)
    assert abs(s["Se"] - 0.9) < 1e-12
    s = detection_stats(ref, test, 360, excluded=[[50 * 360 - 10, 60 * 360 - 10]])
    assert s["FN"] == 0
    assert np.allclose(np.sort(np.unique(s["errors_ms"])), [-3000 / 360, 5000 / 360])


def test_binary_and_strict_end_to_end():
    m = binary_metrics(list("NNVVV"), list("NVVVN"))
    assert (m["TP"], m["FP"], m["FN"], m["TN"]) == (2, 1, 1, 1)
    assert abs(m["F1"] - 4 / 6) < 1e-12
    ref, ref_lab = [100, 500, 900], ["N", "V", "V"]
    test, test_lab = [102, 498, 700], ["N", "V", "V"]  # 900 missed; 700 a false V
    e = end_to_end_metrics(ref, ref_lab, test, test_lab, 360)
    assert e["matched"]["F1"] == 1.0
    assert (e["strict"]["TP"], e["strict"]["FP"], e["strict"]["FN"]) == (1, 1, 1)
    assert (e["qrs"]["FN"], e["qrs"]["FP"]) == (1, 1)

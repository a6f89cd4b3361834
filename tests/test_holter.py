"""ecg.holter: each count of the Holter report on hand-made label sequences."""

import numpy as np
import pytest

from ecg import holter


def labels(text):
    """'NNVNV' -> bool array, True for V."""
    return np.array([c == "V" for c in text.replace(" ", "")])


def times(n, rr=1.0):
    return np.arange(n) * rr


def test_v_runs_are_maximal_stretches_of_v():
    starts, lengths = holter.v_runs(labels("VNNVVNVVVN VVVV"))
    assert starts.tolist() == [0, 3, 6, 10]
    assert lengths.tolist() == [1, 2, 3, 4]
    assert holter.v_runs(labels("NNN"))[0].size == 0


def test_couplets_triplets_and_isolated_count_runs_of_exactly_that_length():
    counts = holter.run_counts(labels("V N VV N VVV N VVVV N VV N V"))
    assert counts == {"isolated_pvcs": 2, "couplets": 2, "triplets": 1}


def test_a_run_is_three_or_more_v_and_a_triplet_is_one_too():
    is_v = labels("N VVV N VVVVV N VV")
    runs = holter.ventricular_runs(is_v, times(len(is_v), rr=0.5))
    assert [r["beats"] for r in runs] == [3, 5]
    assert [r["start_s"] for r in runs] == [0.5, 2.5]
    assert runs[0]["rate_bpm"] == pytest.approx(120.0)  # 0.5-s RR inside the run
    assert holter.run_counts(is_v)["triplets"] == 1


def test_run_kinds_follow_the_aha_definition():
    # 4 V at 0.5 s (120 bpm): NSVT; 4 V at 0.7 s (86 bpm): slow; 70 V at 0.5 s (34.5 s): sustained VT
    t = np.concatenate([np.arange(4) * 0.5, 10 + np.arange(4) * 0.7, 20 + np.arange(70) * 0.5])
    is_v = np.ones(len(t), bool)
    is_v[[3, 7]] = False  # N beats closing the first two runs: three runs
    t[4:8] = 10 + np.arange(4) * 0.7
    kinds = [(r["beats"], r["kind"]) for r in holter.ventricular_runs(is_v, t)]
    assert kinds == [(3, "NSVT"), (3, "slow"), (70, "VT")]


def test_bigeminy_needs_three_pvcs_one_n_apart():
    assert holter.episode_counts(labels("NVNVNVN"))["bigeminy_episodes"] == 1
    assert holter.episode_counts(labels("NVNVN"))["bigeminy_episodes"] == 0  # two cycles only
    # a couplet breaks the chain: V N V N VV N V N V -> first chain 2 PVCs, last 2: none
    assert holter.episode_counts(labels("VNVNVVNVNV"))["bigeminy_episodes"] == 0
    # two chains separated by normal beats
    assert holter.episode_counts(labels("VNVNV NNNN VNVNVNV"))["bigeminy_episodes"] == 2


def test_trigeminy_is_two_n_between_and_may_share_a_pvc_with_bigeminy():
    is_v = labels("V N V N V N N V N N V")  # bigeminy V0-V2-V4, then trigeminy V4-V7-V10
    assert holter.episode_counts(is_v) == {"bigeminy_episodes": 1, "trigeminy_episodes": 1}
    first, count = holter.pvc_chains(is_v, 2)
    assert first.tolist() == [4] and count.tolist() == [3]
    assert holter.episode_counts(labels("VNNVNNVNN"))["trigeminy_episodes"] == 1
    assert holter.episode_counts(labels("VNNNVNNNV"))["trigeminy_episodes"] == 0


def test_heart_rate_windows_skip_pauses_and_sparse_minutes():
    # minute 0 at 60 bpm, minute 1 at 120 bpm, minute 2 empty (a gap), minute 3 at 75 bpm
    t = np.concatenate([np.arange(0, 60, 1.0), np.arange(60, 120, 0.5), np.arange(180, 240, 0.8)])
    hr = holter.heart_rate_summary(t, 240.0)
    assert hr["min"] == pytest.approx(60.0)
    # minute 1's intervals: the 1-s one ending at 60 s (its second beat is in minute 1), then 119 of 0.5 s
    assert hr["max"] == pytest.approx(60 * 120 / 60.5)
    # the 60-s gap (over MAX_RR_S) is left out of the mean, not averaged in as one beat
    counted = np.diff(t)[np.diff(t) <= holter.MAX_RR_S]
    assert hr["mean"] == pytest.approx(60 * len(counted) / counted.sum())
    assert holter.heart_rate_summary(np.array([5.0]), 60.0) == {"min": None, "mean": None, "max": None}


def test_heart_rates_read_only_intervals_between_two_readable_beats():
    # minute 0 at 60 bpm; in minute 1 a lead off carrying noise: a detection every 0.3 s, unreadable
    t = np.concatenate([np.arange(0, 60, 1.0), np.arange(60, 120, 0.3), np.arange(120, 180, 1.0)])
    readable = (t < 60) | (t >= 120)
    assert holter.heart_rate_summary(t, 180.0)["max"] > 190
    hr = holter.heart_rate_summary(t, 180.0, readable=readable)
    assert hr == {"min": pytest.approx(60.0), "mean": pytest.approx(60.0), "max": pytest.approx(60.0)}
    rows = holter.hourly(t, np.zeros(len(t), bool), 180.0, readable=readable)
    assert rows[0]["heart_rate_mean"] == pytest.approx(60.0)
    assert rows[0]["unreadable_beats"] == np.count_nonzero(~readable)


def test_no_run_chain_or_rr_interval_spans_a_gap():
    # N V V | V N V N V N | V N V: three continuous parts of a recording with gaps
    is_v = np.array([0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    part = np.repeat([0, 1, 2], [3, 6, 3])
    assert holter.run_counts(is_v) == {"isolated_pvcs": 4, "couplets": 0, "triplets": 1}
    assert holter.run_counts(is_v, part) == {"isolated_pvcs": 5, "couplets": 1, "triplets": 0}
    first, count = holter.pvc_chains(is_v, 1, part)  # 3, 5, 7; not on to 9, across the gap
    assert first.tolist() == [3] and count.tolist() == [3]
    first, count = holter.pvc_chains(is_v, 1)
    assert first.tolist() == [5] and count.tolist() == [4]
    times = np.cumsum(np.full(12, 0.8))  # the gaps are short: only the parts tell them
    assert holter.rr_in_windows(times, 60.0, 1)[0].tolist() == [11]
    assert holter.rr_in_windows(times, 60.0, 1, part)[0].tolist() == [9]


def test_pauses_are_rr_intervals_of_2_s_or_more_within_what_was_seen():
    t = np.array([0.0, 1.0, 3.0, 4.0, 7.5, 8.5, 10.4, 12.6, 13.6, 16.0])
    #              RR:   1    2    1   3.5   1   1.9  2.2   1   2.4
    assert holter.pauses(t).tolist() == [[1.0, 3.0], [4.0, 7.5], [10.4, 12.6], [13.6, 16.0]]
    part = np.repeat([0, 1], [9, 1])  # a gap before the last beat
    unseen = np.array([[12.6, 12.9]])  # an unreadable stretch from the beat ending a pause
    assert holter.pauses(t, part, unseen).tolist() == [[1.0, 3.0], [4.0, 7.5]]
    assert holter.pause_summary(t) == {
        "pauses": [{"start_s": 1.0, "duration_s": 2.0}, {"start_s": 4.0, "duration_s": 3.5},
                   {"start_s": 10.4, "duration_s": pytest.approx(2.2)},
                   {"start_s": 13.6, "duration_s": pytest.approx(2.4)}],
        "long_pauses": 1, "longest_pause_s": 3.5}
    assert holter.pause_summary(t[:2]) == {"pauses": [], "long_pauses": 0, "longest_pause_s": None}


def test_a_pause_whose_surroundings_are_mostly_unseen_is_none():
    """A 3-s RR interval, its beats readable: with more than two thirds of the 30 s before its
    first beat and after its second unseen (a lead off's noise), it is no pause; with two thirds
    it still is, and overlapping unseen stretches count once."""
    t = np.delete(np.arange(0.0, 200.0), [100, 101])  # 99 -> 102
    assert holter.pauses(t).tolist() == [[99.0, 102.0]]
    two_thirds = np.array([[75.0, 95.0], [80.0, 90.0], [105.0, 125.0]])
    assert holter.unseen_around([99.0], [102.0], two_thirds) == pytest.approx([2 / 3])
    assert holter.pauses(t, unseen=two_thirds).tolist() == [[99.0, 102.0]]
    more = np.array([[70.0, 95.0], [105.0, 125.0]])
    assert holter.unseen_around([99.0], [102.0], more) == pytest.approx([0.75])
    assert holter.pauses(t, unseen=more).tolist() == []
    assert holter.unseen_seconds_before(np.array([-1.0, 5.0, 20.0, 45.0]),
                                        np.array([[0.0, 10.0], [5.0, 20.0], [40.0, 50.0]])).tolist() == [0, 5, 20, 25]


def test_a_pause_needs_both_its_beats_to_stand_out_of_their_noise():
    """With each beat's own SNR given, an RR interval of 2 s or more is a pause only when both its
    beats stand ``PAUSE_BEAT_DB`` out of their noise (a noise hump at a lead off's edge does not)."""
    t = np.array([0.0, 1.0, 3.5, 4.5, 7.0, 8.0])  # RR 2.5 s from 1.0 and from 4.5
    assert holter.pauses(t).tolist() == [[1.0, 3.5], [4.5, 7.0]]
    snr = np.array([25.0, 20.0, 12.0, 20.0, 11.9, 25.0])
    assert holter.pauses(t, own_snr_db=snr).tolist() == [[1.0, 3.5]]
    assert holter.pause_summary(t, own_snr_db=snr)["pauses"] == [{"start_s": 1.0, "duration_s": 2.5}]


def test_hourly_rows_count_beats_and_v_in_each_hour():
    t = np.array([10.0, 11.0, 12.0, 3600.0, 3601.0, 7300.0])
    is_v = np.array([False, True, False, True, False, False])
    rows = holter.hourly(t, is_v, 7400.0)
    assert [r["hour_start_s"] for r in rows] == [0.0, 3600.0, 7200.0]
    assert [r["beats"] for r in rows] == [3, 2, 1]
    assert [r["ventricular_beats"] for r in rows] == [1, 1, 0]
    assert rows[0]["heart_rate_mean"] == pytest.approx(60.0)
    assert rows[2]["heart_rate_mean"] is None  # its only RR (3699 s) is a gap


def test_summary_burden_and_per_hour():
    is_v = labels("NNNV" * 25)
    s = holter.holter_summary(times(100), is_v, 7200.0, analysed_s=3600.0)
    assert (s["total_beats"], s["ventricular_beats"], s["normal_beats"]) == (100, 25, 75)
    assert s["pvc_burden_percent"] == pytest.approx(25.0)
    assert s["pvc_per_hour"] == pytest.approx(25.0)  # per analysed hour
    # three N between PVCs is quadrigeminy: neither count
    assert s["trigeminy_episodes"] == 0 and s["bigeminy_episodes"] == 0
    assert holter.holter_summary(times(30), labels("NNV" * 10), 30.0)["trigeminy_episodes"] == 1
    empty = holter.holter_summary(np.zeros(0), np.zeros(0, bool), 60.0)
    assert empty["total_beats"] == 0 and empty["pvc_burden_percent"] == 0.0


def test_burden_is_over_the_readable_beats():
    is_v = labels("NNNV" * 25)
    readable = np.ones(100, bool)
    readable[:20] = False  # 20 unreadable beats, called N
    s = holter.holter_summary(times(100), is_v, 3600.0, readable=readable)
    assert s["unreadable_beats"] == 20
    assert s["pvc_burden_percent"] == pytest.approx(100 * 25 / 80)

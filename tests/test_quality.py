"""ecg.quality: each beat's signal quality, on real MIT-BIH excerpts with noise added."""

import numpy as np
import pytest

from ecg import quality
from ecg.decision import classify
from ecg.detect import detect_r_peaks
from ecg.pipeline import extract_beats
from tests.conftest import FIXTURES

FS = 360


def record(name):
    from train.data import load_record

    return load_record(name, FIXTURES)


def muscle_like(n, seed, rms):
    """Real muscle noise (nstdb ``ma``, the committed minute, channel ``seed % 2``), ``rms`` mV."""
    import wfdb

    ma = wfdb.rdrecord(str(FIXTURES.parent / "nstdb-noise" / "ma")).p_signal[:, seed % 2]
    w = np.resize(ma - ma.mean(), n)
    return rms * w / np.sqrt(np.mean(w * w))


@pytest.mark.parametrize("name", ["100", "119", "208", "233"])
def test_clean_records_are_readable_and_their_pvcs_are_not_noise(name):
    rec = record(name)
    peaks = detect_r_peaks(rec.signal, FS)
    q, unreadable = quality.beat_quality(rec.signal, peaks, FS)
    assert np.mean(q == quality.GOOD) > 0.95
    assert len(unreadable) == 0
    # ectopic beats are judged by their level over the noise, not by their shape or timing
    v_ref = rec.ann_samples[np.isin(rec.ann_symbols, list("VE"))]
    if len(v_ref):
        nearest = peaks[np.clip(np.searchsorted(peaks, v_ref), 0, len(peaks) - 1)]
        assert np.all(q[np.isin(peaks, nearest)] != quality.UNREADABLE)


def test_a_burst_of_strong_noise_is_unreadable_and_only_it():
    rec = record("119")
    x = rec.signal.copy()
    a, b = 20 * FS, 32 * FS  # 12 s of muscle noise as loud as the QRS complexes' peak to peak
    x[a:b] += muscle_like(b - a, 1, rms=2.4)
    peaks = detect_r_peaks(x, FS)
    q, unreadable = quality.beat_quality(x, peaks, FS)
    inside = (peaks > a + 3 * FS) & (peaks < b - 3 * FS)
    far = (peaks < a - 4 * FS) | (peaks > b + 4 * FS)
    assert np.mean(q[inside] == quality.UNREADABLE) > 0.8
    assert np.all(q[far] == quality.GOOD)
    covered = sum(min(e, b) - max(s, a) for s, e in unreadable if e > a and s < b)
    assert covered > 0.7 * (b - a)
    assert sum(e - s for s, e in unreadable) < 1.3 * (b - a)


def test_mild_noise_makes_beats_noisy_not_unreadable():
    rec = record("100")
    x = rec.signal + muscle_like(len(rec.signal), 2, rms=0.25)
    peaks = detect_r_peaks(x, FS)
    q, _ = quality.beat_quality(x, peaks, FS)
    assert np.mean(q == quality.UNREADABLE) < 0.02
    assert np.mean(q == quality.NOISY) > 0.5


def test_a_lead_off_stretch_is_unreadable():
    rec = record("100")
    x = rec.signal.copy()
    x[10 * FS:15 * FS] = x[10 * FS]  # the electrode comes off: a flat line
    peaks = detect_r_peaks(x, FS)
    _, unreadable = quality.beat_quality(x, peaks, FS)
    flat = [(s, e) for s, e in unreadable if s <= 11 * FS and e >= 14 * FS]
    assert flat, unreadable


def test_unreadable_stretches_span_gaps_between_unreadable_beats_and_beatless_minutes():
    U, G = quality.UNREADABLE, quality.GOOD
    peaks = np.array([100, 500, 2000, 2100, 2400])
    q = np.array([U, U, G, U, U], dtype=np.int8)
    assert quality.between_unreadable(peaks, q).tolist() == [[100, 500], [2100, 2400]]
    minute = int(quality.BEATLESS_S * FS)
    peaks = np.array([minute, minute + 300, 3 * minute])
    assert quality.beatless_stretches(peaks, 3 * minute + 10, FS).tolist() == [[0, minute], [minute + 300, 3 * minute]]
    assert quality.beatless_stretches(peaks[:2], minute + 301, FS).tolist() == [[0, minute]]


@pytest.mark.parametrize("rms_mv", [0.005, 0.02])
def test_a_lead_off_carrying_quiet_noise_is_unreadable_whole(rms_mv):
    """Record 119 after 70 s of the amplifier's own noise (a lead off, not flat): the detector
    finds nothing in it, yet no ECG was recorded there, and none of 119's beats is unreadable."""
    x = np.concatenate([rms_mv * np.random.default_rng(0).standard_normal(70 * FS), record("119").signal])
    beats = extract_beats(x, FS)
    assert beats.unreadable.tolist() == [[0, 70 * FS]]
    assert beats.peaks[0] >= 70 * FS and np.all(beats.quality != quality.UNREADABLE)


def test_a_pause_holds_a_still_baseline_and_a_recovering_lead_does_not():
    fs = 360
    t = np.arange(int(3.0 * fs)) / fs  # R peak to R peak
    p_wave = 0.2 * np.exp(-((t - 1.5) / 0.04) ** 2)
    breathing = 0.3 * np.sin(2 * np.pi * 0.25 * t)
    assert not quality.baseline_moves(p_wave + breathing, fs)
    recovery = 3.0 * np.exp(-t / 1.0)  # after a jump, as in record 116's MLII
    assert quality.baseline_moves(p_wave + recovery, fs)
    jump = np.where(t > 1.0, -1.5, 0.0)
    assert quality.baseline_moves(jump, fs)
    assert not quality.baseline_moves(jump[:int(0.5 * fs)], fs)  # nothing left between T and Q


def test_merge_intervals_joins_overlaps_and_touching_ones():
    got = quality.merge_intervals([[10, 20], [0, 5], [5, 8], [15, 30], [40, 41]])
    assert got.tolist() == [[0, 8], [10, 30], [40, 41]]
    assert quality.merge_intervals(np.zeros((0, 2))).shape == (0, 2)


def test_unreadable_beats_are_never_v():
    p = np.full(4, 0.99)
    decision = {"calibration": {"method": "platt", "a": 1.0, "b": 0.0}, "threshold": 0.5}
    q = np.array([quality.GOOD, quality.NOISY, quality.UNREADABLE, quality.GOOD], np.int8)
    is_v = classify(p, np.zeros((4, 16)), decision, quality=q).is_v
    assert is_v.tolist() == [True, True, False, True]


def test_a_noisy_beat_needs_twice_the_odds_to_be_v():
    decision = {"calibration": {"method": "platt", "a": 1.0, "b": 0.0}, "threshold": 0.24}
    p = np.array([0.30, 0.30, 0.40, 0.40])  # odds 0.43 and 0.67; the threshold's 0.32, twice 0.63
    q = np.array([quality.GOOD, quality.NOISY, quality.GOOD, quality.NOISY], np.int8)
    is_v = classify(p, np.zeros((4, 16)), decision, quality=q).is_v
    assert is_v.tolist() == [True, False, True, True]


def test_extract_beats_carries_the_quality_at_any_rate():
    rec = record("119")
    x = rec.signal.copy()
    x[20 * FS:32 * FS] += muscle_like(12 * FS, 3, rms=2.4)
    at_360 = extract_beats(x, FS)
    assert at_360.quality.shape == (len(at_360),)
    assert (at_360.quality == quality.UNREADABLE).any()
    assert at_360.unreadable.shape[1] == 2


def test_detections_inside_a_flat_stretch_are_no_beats():
    fs = 360
    flat = quality.flat_stretches(np.r_[np.sin(np.arange(10 * fs)), np.full(5 * fs, 0.3)], fs)
    assert flat.tolist() == [[10 * fs, 15 * fs]]
    peaks = np.array([5 * fs, 10 * fs - 1, 10 * fs, 12 * fs, 15 * fs - 1])
    assert quality.outside_flat_stretches(peaks, flat).tolist() == [5 * fs, 10 * fs - 1]


@pytest.mark.parametrize("off_s, runs", [(59, [0, 0, 0, 0]), (60, [0, 0, 1, 1]), (3600, [0, 0, 1, 1])])
def test_a_lead_off_for_a_minute_or_more_ends_a_run_of_beats(off_s, runs):
    fs = 360
    flat = np.array([[5 * fs, 6 * fs], [20 * fs, (20 + off_s) * fs]])  # a 1-s drop, then the lead off
    peaks = np.array([1, 8, 21 + off_s, 30 + off_s]) * fs
    assert quality.lead_on_runs(peaks, flat, fs).tolist() == runs

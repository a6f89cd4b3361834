"""ecg.chunks: a classification task's signal is read in segments around its beats, and a long
stretch without beats between them (a lead off all night) is not read at all."""

import numpy as np
import pytest

from ecg import MODEL_FS, chunks
from ecg.features import beat_groups
from ecg.pipeline import beat_inputs, preprocess
from ecg.signal import resample
from tests.conftest import FIXTURES
from train.data import load_record

REACH = (chunks.FILTER_SETTLE_S + chunks.BEAT_REACH_S) * MODEL_FS  # 360-Hz samples each side of a beat


def test_beats_further_apart_than_both_reaches_are_read_apart():
    peaks = np.array([9000, 9400, 9400 + int(2 * REACH) + 1, 9400 + int(2 * REACH) + 300])
    segments = chunks.segments_for_beats(peaks, 1000, 10**8)
    assert [(a, b) for _, _, a, b in segments] == [(0, 2), (2, 4)]
    step_in, _ = chunks.alignment(1000)
    assert all(lo % step_in == 0 for lo, _, _, _ in segments)
    hour_apart = np.array([9000, 9400, 9400 + 3600 * MODEL_FS])
    (lo0, hi0, _, _), (lo1, hi1, _, _) = chunks.segments_for_beats(hour_apart, 1000, 10**8)
    assert (hi0 - lo0) + (hi1 - lo1) < 5 * REACH * 1000 / MODEL_FS  # each beat and its reaches, not the hour
    close = peaks.copy()
    close[2:] -= 2
    assert len(chunks.segments_for_beats(close, 1000, 10**8)) == 1


@pytest.mark.parametrize("fs", [360, 1000])
def test_beats_either_side_of_a_lead_off_are_those_of_one_read(fs):
    """Record 119's excerpt cut in two by 10 min of a lead off: the beats' inputs, from two
    segments, are those of the whole span read at once, and the flat stretch is not read."""
    rec = load_record("119", FIXTURES)
    half = len(rec.signal) // 2
    off = 600 * MODEL_FS
    x = np.concatenate([rec.signal[:half], np.full(off, 0.3), rec.signal[half:]])
    peaks = np.concatenate([rec.ann_samples[rec.ann_samples < half], rec.ann_samples[rec.ann_samples >= half] + off])
    x = x if fs == MODEL_FS else resample(x, MODEL_FS, fs)
    groups = beat_groups(len(peaks), 16)
    reads = []

    def read(lo, hi):
        reads.append((lo, hi))
        return x[lo:hi]

    got = chunks.beats_in_context(read, fs, len(x), peaks, groups)
    assert len(reads) == 2
    flat_lo, flat_hi = (half + REACH) * fs / MODEL_FS, (half + off - REACH) * fs / MODEL_FS
    assert all(hi <= flat_lo or lo >= flat_hi for lo, hi in reads)

    lo, hi = reads[0][0], reads[-1][1]
    _, filtered = preprocess(x[lo:hi], fs)
    whole = beat_inputs(filtered, peaks - chunks.to_model_samples(lo, fs), MODEL_FS, len(filtered), groups=groups)
    assert np.array_equal(got.peaks, whole.peaks)
    np.testing.assert_allclose(got.windows, whole.windows, atol=1e-5)
    np.testing.assert_allclose(got.features, whole.features, atol=1e-5)

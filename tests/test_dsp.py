"""ecg.dsp, the numpy versions of the scipy functions ecg/ used, against scipy itself.

The deployed model was trained on features computed with scipy, so each function must
give scipy's result: the same filter coefficients (bit for bit), the same output
lengths, alignments and peak choices (exactly), and values within float64 rounding,
on the MIT-BIH excerpts and on edge cases (short inputs, constant signals, plateaus,
every sampling rate the service accepts). scipy stays in the training/test
environment for these comparisons; the service no longer imports it.
"""

import warnings

import numpy as np
import pytest
from scipy import ndimage, special
from scipy import signal as sps

from ecg import dsp
from ecg.dsp import iir
from ecg.detect import qrs_energy_envelope
from tests.conftest import FIXTURE_RECORDS, FIXTURES

RATES = range(100, 1001)  # every integer rate the service accepts


@pytest.fixture(scope="module")
def records():
    from train.data import load_record

    return {name: load_record(name, FIXTURES).signal for name in FIXTURE_RECORDS}


def _scale(x):
    return max(float(np.abs(x).max()), 1e-300) if np.size(x) else 1.0


# ---------------------------------------------------------------- Butterworth design


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_butter_bandpass_sos_and_zi_identical_to_scipy(order):
    bands = [(0.5, 40.0), (5.0, 20.0), (1.0, 30.0), (0.05, 45.0), (10.0, 49.0)]
    for fs in (100.0, 128.0, 250.0, 257.0, 360.0, 500.0, 1000.0):
        for lo, hi in bands:
            want = sps.butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")
            got = dsp.butter_bandpass_sos(order, lo, hi, fs)
            assert got.shape == want.shape and np.array_equal(got, want), (order, lo, hi, fs)
            assert np.array_equal(dsp.sosfilt_zi(got), sps.sosfilt_zi(want)), (order, lo, hi, fs)


def test_butter_bandpass_rejects_bad_bands():
    for lo, hi in [(0.0, 40.0), (40.0, 0.5), (0.5, 180.0), (-1.0, 10.0)]:
        with pytest.raises(ValueError):
            dsp.butter_bandpass_sos(2, lo, hi, 360.0)


# ---------------------------------------------------------------- IIR filtering


def _filters():
    return [dsp.butter_bandpass_sos(o, lo, hi, fs)
            for o, lo, hi, fs in [(2, 0.5, 40.0, 360.0), (2, 5.0, 20.0, 360.0), (4, 1.0, 30.0, 360.0),
                                  (2, 0.5, 40.0, 1000.0), (1, 0.5, 40.0, 100.0), (3, 0.5, 45.0, 100.0)]]


def test_sosfilt_matches_scipy_on_records_and_random_signals(records):
    rng = np.random.default_rng(0)
    signals = list(records.values()) + [rng.standard_normal(5000).cumsum(), rng.standard_normal(5000)]
    for sos in _filters():
        zi = dsp.sosfilt_zi(sos)
        for x in signals:
            for start in (x[0], 0.0, 3.0):
                want = sps.sosfilt(sos.copy(), x, zi=zi * start)[0]
                got = dsp.sosfilt(sos, x, zi * start)
                assert got.shape == want.shape
                assert np.abs(got - want).max() <= 1e-10 * _scale(x), (sos[0], start)


def test_sosfilt_short_and_constant_inputs():
    sos = dsp.butter_bandpass_sos(2, 0.5, 40.0, 360.0)
    zi = dsp.sosfilt_zi(sos)
    rng = np.random.default_rng(1)
    for n in range(1, 51):
        for x in (rng.standard_normal(n), np.full(n, 2.5), np.zeros(n)):
            want = sps.sosfilt(sos.copy(), x, zi=zi * x[0])[0]
            got = dsp.sosfilt(sos, x, zi * x[0])
            assert np.abs(got - want).max() <= 1e-12 * max(_scale(x), 1.0), n
    assert dsp.sosfilt(sos, np.zeros(0), zi).shape == (0,)


def test_sosfilt_stays_accurate_over_a_30_minute_record(records):
    # 650,000 samples: the block carry must not drift (errors relative to the signal)
    x = np.tile(np.concatenate(list(records.values())), 3)[:650_000]
    for sos in _filters()[:3]:
        zi = dsp.sosfilt_zi(sos)
        want = sps.sosfilt(sos.copy(), x, zi=zi * x[0])[0]
        got = dsp.sosfilt(sos, x, zi * x[0])
        err = np.abs(got - want)
        assert err.max() <= 1e-10 * _scale(x)
        # no growth along the record: the last minute is no worse than the first ones
        assert err[-21_600:].max() <= 10 * err[:100_000].max() + 1e-13
    # a slow 5 mV drift on top (the high-pass's states grow with it, in scipy's loop too)
    x = x + np.linspace(0, 5, len(x))
    sos = _filters()[0]
    zi = dsp.sosfilt_zi(sos)
    err = np.abs(dsp.sosfilt(sos, x, zi * x[0]) - sps.sosfilt(sos.copy(), x, zi=zi * x[0])[0])
    assert err.max() <= 1e-10 * _scale(x)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 10, 31, 32, 33, 50, 100, 3600, 3661])
def test_sosfiltfilt_matches_scipy(n):
    rng = np.random.default_rng(n)
    for sos in _filters():
        padlen = min(3 * (2 * len(sos) + 1) * 10, n - 1)
        for x in (rng.standard_normal(n).cumsum(), np.full(n, -1.5)):
            want = sps.sosfiltfilt(sos.copy(), x, padlen=padlen)
            got = dsp.sosfiltfilt(sos, x, padlen)
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= 1e-10 * max(_scale(x), 1.0), (n, sos[0])
            assert np.array_equal(dsp.sosfiltfilt(sos, x, padlen, dsp.sosfilt_zi(sos)), got)


def test_sosfiltfilt_rejects_what_scipy_rejects():
    sos = dsp.butter_bandpass_sos(2, 0.5, 40.0, 360.0)
    with pytest.raises(ValueError):
        dsp.sosfiltfilt(sos, np.zeros(0), 0)
    with pytest.raises(ValueError):
        dsp.sosfiltfilt(sos, np.zeros(10), 10)
    with pytest.raises(ValueError):
        dsp.sosfiltfilt(sos, np.zeros((2, 10)), 3)


def test_sosfiltfilt_matches_scipy_on_records(records):
    for sos in _filters()[:3]:
        for x in records.values():
            for seg in (x, x[:3600], x[-2000:]):
                want = sps.sosfiltfilt(sos.copy(), seg, padlen=30 * len(sos) + 15)
                got = dsp.sosfiltfilt(sos, seg, 30 * len(sos) + 15)
                assert np.abs(got - want).max() <= 1e-10 * _scale(seg)


# ---------------------------------------------------------------- resampling


def test_two_threads_building_a_plans_next_level_at_once_both_filter_right(records, monkeypatch):
    # a gunicorn worker's threads share the cached plans, whose carry levels are built on first use
    import threading

    x = np.concatenate(list(records.values()))[:20_000]  # padded, 640 blocks: carry levels 0, 1 and 2
    sos = _filters()[0]
    want = dsp.sosfiltfilt(sos, x, 150)
    iir._block_filter.cache_clear()
    iir._plan(sos)  # a fresh plan: level 0 only
    both_inside = threading.Barrier(2, timeout=10)

    class MeetingStateCarry(iir._StateCarry):  # each new level is built by both threads at once
        def __init__(self, f):
            both_inside.wait()
            super().__init__(f)

    monkeypatch.setattr(iir, "_StateCarry", MeetingStateCarry)
    out = [None, None]

    def work(i):
        out[i] = dsp.sosfiltfilt(sos, x, 150)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    iir._block_filter.cache_clear()
    assert all(o is not None and np.array_equal(o, want) for o in out)


def test_resample_poly_matches_scipy_at_every_rate():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(700)
    for fs in RATES:
        for up, down in ((360, fs), (fs, 360)):
            want = sps.resample_poly(x, up, down)
            got = dsp.resample_poly(x, up, down)
            assert got.shape == want.shape, (fs, up, down)
            assert np.abs(got - want).max() <= 1e-12 * _scale(x), (fs, up, down)


def test_resample_poly_short_and_constant_inputs():
    rng = np.random.default_rng(3)
    for fs in (100, 128, 250, 257, 500, 997, 1000):
        for n in list(range(1, 51)) + [0]:
            for x in (rng.standard_normal(n), np.full(n, 0.7)):
                for up, down in ((360, fs), (fs, 360)):
                    want = sps.resample_poly(x, up, down)
                    got = dsp.resample_poly(x, up, down)
                    assert got.shape == want.shape, (fs, n, up, down)
                    if n:
                        assert np.abs(got - want).max() <= 1e-12 * _scale(x), (fs, n, up, down)


def test_resample_poly_on_records_and_a_whole_record_length(records):
    x = records["200"]
    for fs in (100, 250, 257, 1000):
        for seg in (x, x[:3600]):
            want = sps.resample_poly(seg, fs, 360)
            got = dsp.resample_poly(seg, fs, 360)
            assert got.shape == want.shape and np.abs(got - want).max() <= 1e-12 * _scale(seg)
    long = np.tile(x, 3)[:180_000]  # 30 min at 100 Hz, up to 360
    want, got = sps.resample_poly(long, 18, 5), dsp.resample_poly(long, 18, 5)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-12 * _scale(long)


def test_resample_poly_same_rate_and_bad_factors():
    x = np.arange(5.0)
    got = dsp.resample_poly(x, 7, 7)
    assert np.array_equal(got, x) and got is not x
    with pytest.raises(ValueError):
        dsp.resample_poly(x, 0, 3)


def test_firwin_kaiser_lowpass_matches_scipy():
    for max_rate in (2, 5, 18, 25, 36, 360, 997):
        numtaps = 2 * 10 * max_rate + 1
        want = sps.firwin(numtaps, 1.0 / max_rate, window=("kaiser", 5.0))
        got = dsp.firwin_kaiser_lowpass(numtaps, 1.0 / max_rate)
        assert np.abs(got - want).max() <= 1e-15


# ---------------------------------------------------------------- moving average


@pytest.mark.parametrize("mode", ["constant", "nearest"])
def test_uniform_filter1d_matches_scipy(mode, records):
    rng = np.random.default_rng(4)
    for n in range(1, 51):
        for size in range(1, 41):
            for x in (rng.standard_normal(n) ** 2, np.full(n, 3.0), np.zeros(n)):
                want = ndimage.uniform_filter1d(x, size, mode=mode)
                got = dsp.uniform_filter1d(x, size, mode)
                assert got.shape == want.shape
                assert np.abs(got - want).max() <= 1e-13 * max(_scale(x), 1.0), (n, size)
    for x in records.values():
        _, d, _ = qrs_energy_envelope(x, 360)
        for size in (10, 25, 36, 100):
            want = ndimage.uniform_filter1d(d * d, size, mode=mode)
            got = dsp.uniform_filter1d(d * d, size, mode)
            assert np.abs(got - want).max() <= 1e-12 * _scale(d * d)


def test_uniform_filter1d_is_exactly_zero_on_zeros_after_a_large_value():
    # a running sum leaves rounding residue after a large value; summing each window
    # alone gives exact zeros, so no spurious maxima appear in a flat region
    x = np.zeros(400)
    x[10:30] = 1e5 * np.random.default_rng(5).random(20)
    got = dsp.uniform_filter1d(x, 36, "constant")
    assert np.all(got[70:] == 0.0)
    assert np.abs(got - ndimage.uniform_filter1d(x, 36, mode="constant")).max() <= 1e-10


def test_uniform_filter1d_rejects_other_modes():
    with pytest.raises(ValueError):
        dsp.uniform_filter1d(np.ones(5), 3, "reflect")


# ---------------------------------------------------------------- peaks


def test_find_peaks_identical_to_scipy_on_random_plateaus_and_ties():
    rng = np.random.default_rng(6)
    for trial in range(4000):
        n = int(rng.integers(0, 80))
        if trial % 3 == 0:
            x = rng.integers(0, 4, n).astype(float)  # many plateaus and equal peaks
        elif trial % 3 == 1:
            x = np.round(rng.standard_normal(n), 1)
        else:
            x = rng.standard_normal(n)
        for distance in (None, 1, 2, 3, 7, 13, 40, 2.5):
            want = sps.find_peaks(x, distance=distance)[0]
            got = dsp.find_peaks(x, distance=distance)
            assert got.dtype == np.int64 and np.array_equal(got, want), (trial, distance, x.tolist())


def test_find_peaks_edge_cases():
    cases = [[], [1.0], [1.0, 2.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0],
             [0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0, 0.0], [2.0, 1.0, 2.0], [0.0, 5.0, 5.0, 4.0, 5.0, 5.0, 0.0]]
    for x in cases:
        x = np.asarray(x, dtype=float)
        for distance in (None, 1, 3):
            assert np.array_equal(dsp.find_peaks(x, distance=distance), sps.find_peaks(x, distance=distance)[0])
    with pytest.raises(ValueError):
        dsp.find_peaks(np.ones(5), distance=0.5)


def test_find_peaks_on_qrs_envelopes_of_records(records):
    # exactly what the detector does: the envelope padded with a zero at each end
    for x in records.values():
        _, _, env = qrs_energy_envelope(x, 360)
        padded = np.concatenate([[0.0], env, [0.0]])
        for seg in (padded, padded[:3602], padded[5000:8602]):
            for distance in (72, 20, 200):
                want = sps.find_peaks(seg, distance=distance)[0]
                assert np.array_equal(dsp.find_peaks(seg, distance=distance), want)


# ---------------------------------------------------------------- sigmoid


def test_expit_matches_scipy_without_warnings():
    x = np.concatenate((np.linspace(-800, 800, 20001), [-1e308, -745.2, 0.0, 1e308, 36.7, -36.7]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
            got = dsp.expit(x)
    want = special.expit(x)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.all((got >= 0) & (got <= 1))
    rel = np.abs(got - want) / np.maximum(want, np.finfo(float).tiny)
    assert rel[want > 1e-300].max() <= 1e-15
    assert got[0] == 0.0 and dsp.expit(0.0) == 0.5


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_median_1d_is_numpys_median_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 14, 15, 40, 41):
        v = rng.normal(size=n).astype(dtype)
        got, want = dsp.median_1d(v), np.median(v)
        assert got == want and got.dtype == want.dtype
        v[rng.choice(n, n // 3, replace=False)] = np.nan  # NaNs are ignored, as nanmedian does
        assert dsp.median_1d(v) == np.nanmedian(v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(dsp.median_1d(np.full(4, np.nan)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_rows_is_numpys_median_bit_for_bit(dtype):
    rng = np.random.default_rng(4)
    for shape in ((14, 360), (1, 360), (5, 7), (3, 1), (2, 2), (40, 41)):
        a = (rng.normal(size=shape) * rng.choice([1e-3, 1.0, 1e3])).astype(dtype)
        a[0, : shape[1] // 2] = np.round(a[0, : shape[1] // 2], 1)  # ties
        keep = a.copy()
        got, want = dsp.median_rows(a), np.median(a, axis=1, keepdims=True)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got, want)
        assert np.array_equal(a, keep)  # the caller's rows are not reordered


def test_gradient_1d_is_numpys_gradient_bit_for_bit():
    rng = np.random.default_rng(5)
    for n in (2, 3, 10, 3600):
        x = rng.normal(size=n).cumsum()
        got = dsp.gradient_1d(x)
        assert got.dtype == np.float64 and np.array_equal(got, np.gradient(x))


def test_resample_poly_line_padding_matches_scipy():
    rng = np.random.default_rng(4)
    for n in (2, 3, 5, 17, 700):  # scipy's line of one sample is NaN; ours a constant
        x = rng.standard_normal(n) + 3.0
        for fs in RATES[::9]:  # the padding is the same code at every rate
            for up, down in ((360, fs), (fs, 360)):
                want = sps.resample_poly(x, up, down, padtype="line")
                got = dsp.resample_poly(x, up, down, padtype="line")
                assert got.shape == want.shape, (n, fs, up, down)
                assert np.abs(got - want).max() <= 1e-12 * _scale(x), (n, fs, up, down)
    assert np.allclose(dsp.resample_poly(np.array([2.5]), 18, 5, padtype="line"), 2.5, rtol=0.01)
    with pytest.raises(ValueError):
        dsp.resample_poly(x, 2, 3, padtype="reflect")


def test_nanquantile_rows_is_numpys_nanquantile_bit_for_bit():
    rng = np.random.default_rng(5)
    for shape in ((2, 20), (1, 20), (30, 20), (4, 1), (6, 7)):
        a = rng.normal(size=shape) * rng.choice([1e-3, 1.0, 1e3])
        a[rng.random(shape) < 0.6] = np.nan  # the rhythm's intervals: NaN where a V call ends one
        a[:, 0] = np.where(np.isnan(a).all(axis=1), 1.0, a[:, 0])  # each row holds a number
        a[0, :] = np.round(a[0, :], 1)  # ties
        keep = a.copy()
        for q in (0.0, 0.25, 0.5, 0.75, 1.0):
            assert np.array_equal(dsp.nanquantile_rows(a, q), np.nanquantile(a, q, axis=1), equal_nan=True)
        assert np.array_equal(a, keep, equal_nan=True)

"""The speed-ups of ecg/ and its move off scipy leave extract_beats' arrays as they were
(preprocessing nv-pre-1), and nv-pre-2 only appends the neighbours' features. (nv-pre-3
turns the signal upright first; tests/test_pipeline.py checks it against nv-pre-2.)

Trained models depend on the exact arrays ``ecg.pipeline.extract_beats`` returns. Below
is a frozen copy of the code as it stood before it was optimised (per-call
``sosfiltfilt``, ``np.nanmedian`` per group, index-array windows) and while it still
used scipy (``resample_poly``, ``sosfiltfilt``, ``ndimage.uniform_filter1d`` and
``find_peaks``, now numpy versions in ``ecg.dsp``); the current code must give the same
peaks (identical integers) and the same windows and features (float arrays within 1e-6:
float32 rounding; the numpy filters differ from scipy's by ~1e-12 mV) on the real
MIT-BIH excerpts, whole, cut into 10-s strips, and resampled to other rates.
"""

import warnings
from math import gcd

import numpy as np
import pytest
from scipy import ndimage
from scipy import signal as sps

import ecg.detect
from ecg import features, signal
from ecg.pipeline import PREPROCESSING, SUPPORTED_VERSIONS, extract_beats
from tests.conftest import FIXTURE_RECORDS, FIXTURES

TOL = 1e-6
FROZEN_VERSION = "nv-pre-2"  # what the reference below computes


# ---- the reference: ecg/ as of commit 925b8ee, trimmed to what extract_beats uses ----

def ref_bandpass(x, fs, low_hz=0.5, high_hz=40.0, order=2):
    x = np.asarray(x, dtype=np.float64)
    sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=float(fs), output="sos")
    padlen = min(3 * (2 * len(sos) + 1) * 10, max(len(x) - 1, 0))
    return sps.sosfiltfilt(sos, x, padlen=padlen)


def ref_resample(x, fs_in, fs_out):
    x = np.asarray(x, dtype=np.float64)
    if int(fs_in) == int(fs_out):
        return x
    g = gcd(int(fs_in), int(fs_out))
    # padtype "line" since 925b8ee: an offset is no longer a step at each end
    return sps.resample_poly(x, int(fs_out) // g, int(fs_in) // g, padtype="line")


def ref_find_peaks(x, distance=None):
    return sps.find_peaks(x, distance=distance)[0]


def ref_uniform_filter1d(x, size, mode="constant"):
    return ndimage.uniform_filter1d(x, size, mode=mode)


def ref_beat_windows(x, peaks, before, after):
    x = np.asarray(x, dtype=np.float32)
    peaks = np.asarray(peaks, dtype=np.int64)
    padded = np.concatenate([np.zeros(before, np.float32), x, np.zeros(after, np.float32)])
    idx = peaks[:, None] + np.arange(before + after)[None, :]
    return padded[idx]


def ref_beat_groups(n, group_size=16):
    n_groups = max(1, int(round(n / group_size)))
    bounds = np.linspace(0, n, n_groups + 1).round().astype(np.int64)
    return np.repeat(np.arange(n_groups), np.diff(bounds))


def ref_group_median(values, groups):
    values = np.asarray(values)
    out = np.empty_like(values, dtype=np.float32)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], len(groups)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for a, b in zip(starts, ends):
            out[a:b] = np.nanmedian(values[a:b], axis=0)
    return out


def ref_qrs_widths(x, peaks, fs, before_s=0.12, after_s=0.15, smooth_s=0.01, level=0.1):
    k = max(int(round(smooth_s * fs)), 1)
    env = np.convolve(np.abs(np.gradient(np.asarray(x, dtype=np.float64))), np.ones(k) / k, mode="same")
    w = ref_beat_windows(env, peaks, int(round(before_s * fs)), int(round(after_s * fs)) + 1)
    above = w > level * w.max(axis=1, keepdims=True)
    onset = np.argmax(above, axis=1)
    offset = w.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)
    return np.maximum(offset - onset + 1 - (k - 1), 1) / fs


def ref_rr_features(peaks, fs, groups, qrs_s):
    rr_prev, rr_next = features.rr_intervals(peaks, fs)
    local = ref_group_median(rr_prev, groups)
    overall = np.nanmedian(rr_prev) if len(peaks) > 1 else 1.0
    local = np.where(np.isfinite(local) & (local > 0), local, overall)
    has_prev, has_next = np.isfinite(rr_prev), np.isfinite(rr_next)
    prev = np.where(has_prev, rr_prev, local)
    nxt = np.where(has_next, rr_next, local)
    q_local = ref_group_median(qrs_s, groups)
    return np.column_stack([
        prev / local, nxt / local, prev, nxt, local,
        has_prev.astype(np.float64), has_next.astype(np.float64),
        qrs_s / np.maximum(q_local, 1e-3), qrs_s,
    ]).astype(np.float32)


def ref_neighbours(own, groups):
    """nv-pre-2's six columns, one beat at a time: the previous or next beat's own value,
    or at a signal's first / last beat the group's median of it."""
    usual = ref_group_median(own, groups).astype(np.float64)
    pick = [(9, -1), (9, 1), (7, -1), (7, 1), (0, -1), (1, 1)]  # template_corr, qrs ratio, RR ratios
    out = np.empty((len(own), len(pick)))
    for i in range(len(own)):
        for c, (col, step) in enumerate(pick):
            j = i + step
            out[i, c] = own[j, col] if 0 <= j < len(own) else usual[i, col]
    return out


def ref_extract_beats(x, fs, monkeypatch):
    """The arrays extract_beats returned before the speed-ups (the detector fed scipy's functions)."""
    x360 = ref_resample(x, fs, 360)
    filtered = ref_bandpass(x360, 360, 0.5, 40.0)
    with monkeypatch.context() as m:
        m.setattr(ecg.detect, "bandpass", ref_bandpass)
        m.setattr(ecg.detect, "find_peaks", ref_find_peaks)
        m.setattr(ecg.detect, "uniform_filter1d", ref_uniform_filter1d)
        peaks = np.asarray(ecg.detect.detect_r_peaks(x360, 360), dtype=np.int64)
    n = len(peaks)
    groups = ref_beat_groups(n, 16)
    windows = ref_beat_windows(filtered, peaks, 180, 180)
    windows -= np.median(windows, axis=1, keepdims=True)
    core = windows[:, 180 - 36:180 + 36]
    scale = ref_group_median(core.max(axis=1) - core.min(axis=1), groups)
    windows /= np.maximum(scale, 1e-3)[:, None]
    templates = ref_group_median(windows, groups) if n else windows
    qrs_s = ref_qrs_widths(filtered, peaks, 360) if n else np.zeros(0)
    rr_prev, rr_next = features.rr_intervals(peaks, 360)
    own = np.column_stack([
        ref_rr_features(peaks, 360, groups, qrs_s),
        features.template_correlation(windows, templates),
    ]) if n else np.zeros((0, 10))
    feats = np.column_stack([own, ref_neighbours(own, groups)]).astype(np.float32)
    return {
        "peaks": peaks,
        "positions": signal.map_positions(peaks, 360, fs, n_to=len(x)),
        "windows": np.stack([windows, windows - templates], axis=-1).astype(np.float32),
        "features": feats,
        "rr_prev_s": rr_prev, "rr_next_s": rr_next, "qrs_width_s": qrs_s, "filtered": filtered,
    }


# ---- comparison ----

def assert_same(beats, ref, where):
    for key in ("peaks", "positions"):
        got = getattr(beats, key)
        assert got.dtype == ref[key].dtype and np.array_equal(got, ref[key]), f"{where}: {key} differ"
    for key in ("windows", "features", "rr_prev_s", "rr_next_s", "qrs_width_s", "filtered"):
        got, want = getattr(beats, key), ref[key]
        assert got.shape == want.shape and got.dtype == want.dtype, f"{where}: {key} shape/dtype"
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{where}: {key} NaN pattern differs"
        if got.size:
            diff = np.nanmax(np.abs(got.astype(np.float64) - want))
            assert diff <= TOL, f"{where}: {key} max abs diff {diff}"


def test_reference_is_for_a_served_preprocessing_version():
    # the service still produces the reference's version, for the models trained on it
    assert FROZEN_VERSION in SUPPORTED_VERSIONS
    assert PREPROCESSING["rr_features"][:10] == list(features.RR_FEATURE_NAMES[:SUPPORTED_VERSIONS["nv-pre-1"]])


@pytest.fixture(scope="module")
def fixture_signals():
    from train.data import load_record

    return {name: load_record(name, FIXTURES).signal for name in FIXTURE_RECORDS}


def frozen(x, fs):
    return extract_beats(x, fs, version=FROZEN_VERSION)


@pytest.mark.parametrize("name", FIXTURE_RECORDS)
def test_whole_excerpt_and_strips_unchanged(name, fixture_signals, monkeypatch):
    x = fixture_signals[name]
    assert_same(frozen(x, 360), ref_extract_beats(x, 360, monkeypatch), f"{name} whole")
    # 10-s strips, a short tail, and a strip with two groups of unequal sizes (~24 beats)
    cuts = [(a, a + 3600) for a in range(0, len(x) - 3600, 3600)] + [(len(x) - 2000, len(x)),
                                                                   (1000, 1000 + 7200)]
    for a, b in cuts:
        seg = x[a:b]
        assert_same(frozen(seg, 360), ref_extract_beats(seg, 360, monkeypatch), f"{name}[{a}:{b}]")


@pytest.mark.parametrize("fs", [100, 128, 250, 257, 500, 997, 1000])
def test_resampled_inputs_unchanged(fs, fixture_signals, monkeypatch):
    for name, x in fixture_signals.items():
        y = ref_resample(x[:360 * 40], 360, fs)
        assert_same(frozen(y, fs), ref_extract_beats(y, fs, monkeypatch), f"{name} at {fs} Hz")
        strip = y[:10 * fs]
        assert_same(frozen(strip, fs), ref_extract_beats(strip, fs, monkeypatch), f"{name} strip at {fs} Hz")


@pytest.mark.parametrize("n", [2, 3, 10, 31, 32, 33, 100, 3600, 20000])
@pytest.mark.parametrize("band", [(0.5, 40.0, 2), (5.0, 20.0, 2), (1.0, 30.0, 4)])
def test_bandpass_equals_sosfiltfilt(n, band):
    # scipy's loop and the numpy block filter round differently: ~1e-12 of the signal's
    # scale on this random walk (scipy itself is ~1e-13 from exact), 1e-10 allowed
    x = np.random.default_rng(n).standard_normal(n).cumsum()
    got, want = signal.bandpass(x, 360, *band), ref_bandpass(x, 360, *band)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.abs(got - want).max() <= 1e-10 * np.abs(x).max()


def test_group_median_equals_nanmedian_per_group():
    rng = np.random.default_rng(0)
    for trial in range(1500):
        n = int(rng.integers(0, 70))
        groups = ref_beat_groups(n, int(rng.integers(1, 20))) if n else np.zeros(0, np.int64)
        if trial % 11 == 0 and n > 3:
            groups = np.sort(rng.integers(0, 4, n))  # runs of any sizes
        shape = (n,) if trial % 2 else (n, int(rng.integers(1, 6)))
        v = rng.standard_normal(shape).astype(np.float32 if trial % 3 else np.float64)
        if trial % 5 == 0 and n:
            v[rng.random(shape) < 0.3] = np.nan
        if trial % 13 == 0 and n:
            v[:] = np.nan
        if trial % 7 == 0:
            v = np.round(v, 1)  # ties
        got, want = features.group_median(v, groups), ref_group_median(v, groups)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got, want, equal_nan=True), (trial, n, shape)


def test_beat_groups_and_windows_unchanged():
    for n in range(0, 120):
        for size in (1, 7, 16):
            got, want = features.beat_groups(n, size), ref_beat_groups(n, size)
            assert got.dtype == want.dtype and np.array_equal(got, want)
    x = np.random.default_rng(1).standard_normal(1000)
    for peaks in ([0, 1, 500, 999, 1000], [], [3, -2, 999]):  # the last one: off the signal
        peaks = np.asarray(peaks, np.int64)
        got = features.beat_windows(x, peaks, 180, 180)
        assert np.array_equal(got, ref_beat_windows(x, peaks, 180, 180))
    for fn in (features.beat_windows, ref_beat_windows):  # past the end: an error, as before
        with pytest.raises(IndexError):
            fn(x, np.array([10, 1005]), 180, 180)


def test_onnx_batches_give_the_same_probabilities():
    """The service runs a long record in batches of BATCH_BEATS: same p_v as one big call."""
    from service.model import BATCH_BEATS, load_model
    from tests.service_helpers import MODEL_DIR

    model = load_model(MODEL_DIR)
    rng = np.random.default_rng(3)
    n = 2 * BATCH_BEATS + 37
    windows = rng.standard_normal((n, 360, 2)).astype(np.float32)
    feats = rng.standard_normal((n, model.rr_width)).astype(np.float32)
    for session in (model.session, model.rest):  # a cascade's two graphs, else the one
        if session is None:
            continue
        whole = session.run(["p_v"], {"beat": windows, "rr": feats})[0][:, 0]
        batched = model._run(session, windows, feats)
        assert batched.shape == (n,) and np.array_equal(batched, whole)
    assert model.p_v(windows, feats).shape == (n,)

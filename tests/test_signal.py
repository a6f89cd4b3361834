import numpy as np
import pytest

from ecg.signal import bandpass, map_positions, remove_mains, resample
from tests.conftest import synthetic_ecg


@pytest.mark.parametrize("fs", [100, 128, 250, 257, 500, 1000])
def test_resample_keeps_r_peak_times(fs):
    beats = np.arange(0.5, 9.6, 0.8)
    x = synthetic_ecg(fs, beats, 10.0)
    y = resample(x, fs, 360)
    assert len(y) == int(np.ceil(len(x) * 360 / fs))
    for r in beats:
        a = int(r * 360)
        peak = a - 20 + np.argmax(y[a - 20:a + 20])
        assert abs(peak / 360 - r) < 0.006  # within 2 samples at 360 Hz


def test_resample_same_rate_is_identity():
    x = np.random.default_rng(0).standard_normal(1000)
    assert np.array_equal(resample(x, 360, 360), x)


def test_map_positions_round_trip_and_clip():
    p = np.array([0, 359, 3600, 7199])
    back = map_positions(map_positions(p, 360, 1000), 1000, 360)
    assert np.array_equal(back, p)
    assert map_positions([719], 360, 100, n_to=200)[0] == 199  # 200 rounds past the end


@pytest.mark.parametrize("wander_hz, residual_mv", [(0.1, 0.15), (0.3, 0.35)])
def test_bandpass_removes_wander_without_moving_peaks(wander_hz, residual_mv):
    fs = 360
    beats = np.arange(0.5, 9.6, 0.8)
    x = synthetic_ecg(fs, beats, 10.0, wander=1.5, wander_hz=wander_hz)
    y = bandpass(x, fs)
    # the 1.5 mV breathing wander is mostly gone: between beats the signal sits near zero
    quiet = np.concatenate([y[int((r + 0.45) * fs):int((r + 0.6) * fs)] for r in beats[:-1]])
    assert np.abs(quiet).max() < residual_mv
    for r in beats:
        a = int(r * fs)
        assert abs(a - 15 + np.argmax(y[a - 15:a + 15]) - a) <= 1



@pytest.mark.parametrize("fs", [250, 257, 360, 1000])
@pytest.mark.parametrize("mains_hz, off_hz", [(50.0, 0.0), (60.0, 0.0), (50.0, 0.05), (60.0, -0.05)])
def test_remove_mains_takes_hum_away_to_the_ends(fs, mains_hz, off_hz):
    beats = np.arange(0.5, 9.6, 0.8)
    ecg = synthetic_ecg(fs, beats, 10.3)
    t = np.arange(len(ecg)) / fs
    hum = 1.0 * np.sin(2 * np.pi * (mains_hz + off_hz) * t + 0.7)
    left = remove_mains(ecg + hum, fs) - ecg
    assert np.abs(left).max() < 0.05  # of 1 mV: at most 5 %, the strip's ends included
    assert np.abs(left[: fs // 10]).max() < 0.05 and np.abs(left[-(fs // 10):]).max() < 0.05


def test_remove_mains_leaves_an_ecg_without_hum_alone():
    fs = 360
    x = synthetic_ecg(fs, np.arange(0.5, 29.6, 0.8), 30.0)
    assert np.array_equal(remove_mains(x, fs), x)  # no hum over MAINS_NEGLIGIBLE_SHARE of its size to take
    assert np.array_equal(remove_mains(x[:100], fs), x[:100])  # shorter than a block

from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "data" / "mitdb"
FIXTURE_RECORDS = ("100", "119", "200", "208", "233")


@pytest.fixture(scope="session")
def fixture_dir():
    return FIXTURES


@pytest.fixture(scope="session")
def record_119():
    from train.data import load_record

    return load_record("119", FIXTURES)


def synthetic_ecg(fs, beats_s, duration_s, qrs_width_s=0.09, amplitude=1.0, wander=0.0, noise=0.0, seed=0,
                  wander_hz=0.3):
    """A simple ECG: P, QRS and T Gaussian bumps at known R times (s), in mV."""
    t = np.arange(int(round(duration_s * fs))) / fs
    x = np.zeros_like(t)
    sig = qrs_width_s / 6
    for r in beats_s:
        x += 0.15 * np.exp(-0.5 * ((t - r + 0.16) / 0.02) ** 2)
        x -= 0.1 * amplitude * np.exp(-0.5 * ((t - r + 0.025) / (sig * 0.7)) ** 2)
        x += amplitude * np.exp(-0.5 * ((t - r) / sig) ** 2)
        x -= 0.15 * amplitude * np.exp(-0.5 * ((t - r - 0.03) / (sig * 0.7)) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - r - 0.3) / 0.05) ** 2)
    x += wander * np.sin(2 * np.pi * wander_hz * t)
    x += noise * np.random.default_rng(seed).standard_normal(len(t))
    return x

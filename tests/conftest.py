from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "data" / "mitdb"
FIXTURE_RECORDS = ("100", "119", "200", "208", "233")
PAUSES_FIXTURES = Path(__file__).parent / "data" / "mitdb-pauses"  # 2 min of record 232: 13 pauses
TWO_LEADS = Path(__file__).parent / "data" / "mitdb-two-leads"  # both channels: 119, 208, 214, 233


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


def write_swung_232(path):
    """Record 232's 2 minutes (``PAUSES_FIXTURES``) with a 2-mV baseline swing inside its pause
    from 48.9 s (a lead disturbed and recovering, smooth enough not to be taken for a beat),
    written as a 360-Hz EDF at ``path``; returns the record (``train.data.Record``)."""
    from bench.edf_files import write_edf
    from train.data import load_record

    rec = load_record("232", PAUSES_FIXTURES)
    t = np.arange(len(rec.signal)) / 360.0
    rise = np.clip((t - 49.6) / 0.4, 0.0, 1.0)
    swing = 2.0 * 0.5 * (1 - np.cos(np.pi * rise)) * np.exp(-np.clip(t - 50.0, 0.0, None) / 0.8)
    write_edf(path, [rec.signal + swing], 360, ["MLII"])
    return rec

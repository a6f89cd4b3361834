"""The Holter bench's recordings, built from MIT-BIH (not committed: 62 MB and 518 MB).

- ``mitdb_day.edf``: the 48 records back to back, one lead each (MLII; V5 in 102 and 104,
  which have no MLII), 360 Hz, EDF+ with an annotation at each record's start: 24 h 4 min
  of real ECG. ``mitdb_day.npz`` beside it: the reference beats (sample, AAMI class), the
  ventricular-flutter ranges EC57 leaves out, and each record's first sample.
- ``three_lead_1000.edf``: the same day at 1000 Hz with three signals (the record's MLII,
  its other lead, and their difference), as a 24-h 3-lead Holter file is sized.

Both cut to whole seconds (EDF data records of 1 s): the day loses its last 0.67 s.
"""

import numpy as np

from ecg.signal import resample

from .edf_files import to_digital, write_edf

DAY_FS = 360
BIG_FS = 1000
RAIL_MV = 5.0  # a Holter amplifier's input range, +- (a drifting lead off saturates there)


def _records(data_dir):
    from train.data import ALL_RECORDS, OTHER_LEAD, load_record

    for name in ALL_RECORDS:
        yield name, load_record(name, data_dir), load_record(name, data_dir, lead=OTHER_LEAD)


def build_day(path, data_dir):
    """Write ``mitdb_day.edf`` and its reference ``.npz``; returns the reference dict."""
    signal, samples, classes, excluded, starts, notes = [], [], [], [], [], []
    offset = 0
    for name, rec, _ in _records(data_dir):
        signal.append(rec.signal)
        samples.append(rec.ann_samples + offset)
        classes.append(rec.ann_classes)
        excluded.append(rec.excluded + offset)
        starts.append(offset)
        notes.append((offset / DAY_FS, f"MIT-BIH {name} ({rec.lead})"))
        offset += len(rec.signal)
    n = write_edf(path, [np.concatenate(signal)], DAY_FS, ["ECG MLII"], annotations=notes)
    samples, classes = np.concatenate(samples), np.concatenate(classes)
    keep = samples < n
    ref = {"samples": samples[keep], "classes": classes[keep], "excluded": np.concatenate(excluded),
           "record_starts": np.array(starts), "records": np.array([t for _, t in notes]), "n": n}
    np.savez(path.with_suffix(".npz"), **ref)
    return ref


def build_lead_off(day, path, lo_s, hi_s, hum_mv=0.0, hum_hz=50.0, noise_mv=0.0, muscle_mv=0.0, drift_mv=0.0):
    """The day at ``day`` with its lead off from ``lo_s`` to ``hi_s``, written to ``path``: flat at
    0 mV, or carrying ``hum_mv`` of ``hum_hz`` mains hum (a floating electrode), ``noise_mv`` RMS of
    white noise (the amplifier's own, seeded), ``muscle_mv`` RMS of nstdb's muscle noise (its test
    split, both channels in turn, tiled; ``train.augment.noise_dir``) or a random walk of
    ``drift_mv`` mV per square-root second clipped at +-5 mV (a wandering high-impedance input
    driving the amplifier into its rails, seeded)."""
    from service.edf import open_channel

    ch = open_channel(day)
    x = ch.read(0, ch.n_samples)
    lo, hi = int(lo_s * DAY_FS), int(hi_s * DAY_FS)
    x[lo:hi] = hum_mv * np.sin(2 * np.pi * hum_hz * np.arange(hi - lo) / DAY_FS)
    rng = np.random.default_rng(0)
    if noise_mv:  # 13 M draws for a 10-h lead off: only when asked for
        x[lo:hi] += noise_mv * rng.standard_normal(hi - lo)
    if muscle_mv:
        x[lo:hi] += muscle_mv * muscle_noise(hi - lo)
    if drift_mv:
        walk = np.cumsum(drift_mv / np.sqrt(DAY_FS) * rng.standard_normal(hi - lo))
        x[lo:hi] += np.clip(walk, -RAIL_MV, RAIL_MV)
    write_edf(path, [x], DAY_FS, ["ECG MLII"])


def muscle_noise(n):
    """(n,) nstdb's muscle noise with unit RMS: its test split, both channels in turn, tiled."""
    from train.augment import load_noise, noise_dir

    ma = load_noise(noise_dir(), "test")["ma"]
    z = np.resize(np.concatenate([ma[:, 0], ma[:, 1]]), n)
    z -= z.mean()
    return z / np.sqrt(np.mean(z ** 2))


def load_reference(path):
    with np.load(path.with_suffix(".npz")) as z:
        return {k: z[k] for k in z.files}


def build_three_lead(path, data_dir):
    """Write ``three_lead_1000.edf``: each record's two leads and their difference at 1000 Hz."""
    leads = [[], [], []]
    for _, rec, other in _records(data_dir):
        a, b = resample(rec.signal, DAY_FS, BIG_FS), resample(other.signal, DAY_FS, BIG_FS)
        for k, x in enumerate((a, b, a - b)):
            leads[k].append(to_digital(x))  # int16 at once: 3 x 87 M samples stay 0.5 GB
    return write_edf(path, [np.concatenate(parts) for parts in leads], BIG_FS,
                     ["ECG MLII", "ECG V1", "ECG MLII-V1"])

"""Signal-level augmentation: what real devices record, applied to clean MIT-BIH strips.

A strip is transformed *before* the serving code path (resampling, filtering, detection,
features) sees it, so the network learns from the beats the detector finds in noisy
signals, artefacts detected as beats included (they match no reference beat and are
labelled non-V: :mod:`train.dataset`).

The transformations, each drawn at random per strip (:func:`transform_strip`):

1. ``gain``: amplitude times a log-uniform factor in 0.25..4 (electrode placement, body
   size, device gain).
2. ``polarity``: the lead inverted (a lead whose QRS points down, as V1's often does).
3. ``baseline``: a DC offset and, sometimes, an electrode "pop": a step that relaxes back
   exponentially (the half-cell potential of an electrode losing and regaining contact).
4. ``ma``, ``bw``: muscle artefact and baseline wander recorded by the MIT-BIH Noise Stress
   Test Database (nstdb; Moody, Muldrow & Mark 1984), a random stretch of a random
   channel, at a signal-to-noise ratio drawn from ``SNR_DB`` (nstdb's definition,
   :func:`nst_snr_gain`).
5. ``em``: electrode motion, which the nstdb record ``em`` would provide and we do not
   have: :func:`electrode_motion`, a model of its physics, at an SNR from ``SNR_DB``.
6. ``hum``: mains interference, 50 or 60 Hz with its third harmonic.
7. ``rate``: a round trip through a device's lower sampling rate (360 -> 100, 128 or 250
   -> 360 Hz) with the service's own resampler.

The noise records are split in time so that training, validation and the robustness report
never share a stretch of noise (``NOISE_SPLITS``).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg import MODEL_FS
from ecg.signal import bandpass, resample

KINDS = ("gain", "polarity", "baseline", "ma", "bw", "em", "hum", "rate")
NOISE_KINDS = ("ma", "bw", "em")
NSTDB_RECORDS = ("ma", "bw")
DEFAULT_NOISE_DIRS = ("data/nstdb-noise", "../shared/data/nstdb-noise")
# fractions of each noise record's length: training augmentation, DS1 validation views, the
# DS2 robustness report. Disjoint, so no figure is measured on noise a network trained on.
NOISE_SPLITS = {"train": (0.0, 0.4), "validation": (0.4, 0.5), "test": (0.5, 1.0)}

CLEAN_SHARE = 0.2  # strips of an augmented view left as they are
GAIN_RANGE = (0.25, 4.0)
POLARITY_SHARE = 0.3
SNR_DB = (-6.0, 24.0)  # nstdb's noise stress test spans 24 .. -6 dB
NOISE_SHARE = 0.7  # strips of an augmented view that get a recorded or modelled noise
HUM_SHARE = 0.3
HUM_MV = (0.01, 0.3)  # peak amplitude of the mains fundamental
POP_SHARE = 0.2
POP_MV = (0.5, 3.0)
POP_TAU_S = (0.1, 1.0)
OFFSET_MV = 3.0
RATE_SHARE = 0.3
DEVICE_RATES = (100, 128, 250)

# QRS amplitude for nstdb's SNR: peak-to-peak within +-50 ms of each reference beat
QRS_HALF_WINDOW_S = 0.05
SWAY_SHARE = 0.3  # RMS of the slow sway against an impact's amplitude
IMPACT_RING_S = 3.0  # seconds an impact's damped oscillation is computed over (>= 5 time constants)
TRIM = 0.05  # nst drops the largest and smallest 5 % of its amplitude and noise measurements


def noise_dir(path=None):
    """The folder of the nstdb noise records: ``path``, else ``$ECG_NOISE_DIR``, else a default.

    An explicit ``path`` that holds no noise record is an error, not a fall-back.
    """
    if path is not None:
        if not all((Path(path) / f"{r}.hea").exists() for r in NSTDB_RECORDS):
            raise FileNotFoundError(f"no nstdb noise records (ma, bw) in {path}")
        return Path(path)
    for candidate in (os.environ.get("ECG_NOISE_DIR"), *DEFAULT_NOISE_DIRS):
        if candidate and all((Path(candidate) / f"{r}.hea").exists() for r in NSTDB_RECORDS):
            return Path(candidate)
    raise FileNotFoundError("nstdb noise records not found: pass --noise DIR or set ECG_NOISE_DIR "
                            "(the folder holding ma.hea and bw.hea)")


def load_noise(directory, split):
    """{"ma": (n, 2), "bw": (n, 2)} float64 mV: ``split``'s stretch of each nstdb noise record."""
    import wfdb

    lo, hi = NOISE_SPLITS[split]
    out = {}
    for name in NSTDB_RECORDS:
        rec = wfdb.rdrecord(str(Path(directory) / name))
        if int(rec.fs) != MODEL_FS:
            raise ValueError(f"nstdb record {name} is at {rec.fs} Hz, expected {MODEL_FS}")
        n = rec.p_signal.shape[0]
        out[name] = rec.p_signal[int(lo * n):int(hi * n)].astype(np.float64)
    return out


def trimmed_mean(values, trim=TRIM):
    """Mean of ``values`` (k,) without the largest and smallest ``trim`` share."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    cut = int(len(v) * trim)
    return float(v[cut:len(v) - cut].mean()) if len(v) > 2 * cut else float(v.mean())


def qrs_amplitude(x, beats, fs):
    """Trimmed mean peak-to-peak QRS amplitude (mV) of ``x`` (n,) around ``beats`` (k,) samples.

    Measured on the 0.5-40 Hz band-pass, so baseline wander does not count as QRS.
    """
    beats = np.asarray(beats, dtype=np.int64)
    beats = beats[(beats >= 0) & (beats < len(x))]
    if not len(beats):
        return 0.0
    f = bandpass(x, fs, 0.5, 40.0)
    half = int(round(QRS_HALF_WINDOW_S * fs))
    idx = np.clip(beats[:, None] + np.arange(-half, half + 1)[None, :], 0, len(x) - 1)
    w = f[idx]
    return trimmed_mean(w.max(axis=1) - w.min(axis=1))


def noise_power(noise, fs):
    """nst's noise power: the trimmed mean of the variance of each 1-s stretch of ``noise`` (n,)."""
    size = int(fs)
    chunks = noise[:len(noise) // size * size].reshape(-1, size) if len(noise) >= size else noise[None]
    return trimmed_mean(chunks.var(axis=1))


def nst_snr_gain(qrs_pp_mv, noise, fs, snr_db):
    """The factor for ``noise`` that gives ``snr_db`` by nstdb's definition.

    The MIT-BIH Noise Stress Test (PhysioNet's ``nst``): signal power S = A**2 / 8 for a QRS
    peak-to-peak amplitude A (a sine's power from its peak-to-peak), noise power N from 1-s
    stretches; SNR = 10 log10(S / N).
    """
    n_power = noise_power(noise, fs)
    if n_power <= 0 or qrs_pp_mv <= 0:
        return 0.0
    return float(np.sqrt(qrs_pp_mv ** 2 / 8.0 / n_power / 10.0 ** (snr_db / 10.0)))


def rms_snr_gain(clean, noise, snr_db):
    """The factor for ``noise`` that gives ``snr_db`` as RMS of ``clean`` over RMS of the noise."""
    c = np.sqrt(np.mean((clean - clean.mean()) ** 2))
    n = np.sqrt(np.mean((noise - noise.mean()) ** 2))
    return 0.0 if n == 0 else float(c / n / 10.0 ** (snr_db / 20.0))


def electrode_motion(n, fs, rng):
    """A model of electrode-motion artefact, (n,) with unit RMS.

    Motion stretches the skin under an electrode; the skin's stretch potential follows the
    displacement and relaxes back through the skin's RC (a high-pass with a time constant of
    0.1-0.5 s), and a loosened electrode adds steps of half-cell potential that relax the
    same way. The displacement is a slow sway (breathing, posture: 0.3-3 Hz) plus impacts
    (steps, arm swings, cable tugs), each a damped oscillation of the soft tissue and cable at
    1.5-12 Hz, in bursts of motion that cover about half the time. The faster impacts fall into
    the QRS band (5-20 Hz) with a QRS's duration: this noise, unlike muscle or baseline noise,
    is detected as beats.
    """
    from scipy.signal import butter, lfilter, sosfilt

    duration = n / fs
    sway = sosfilt(butter(2, [0.3, 3.0], btype="bandpass", fs=fs, output="sos"), rng.standard_normal(n))
    x = SWAY_SHARE * sway / max(np.sqrt(np.mean(sway ** 2)), 1e-12)
    ring = np.arange(int(IMPACT_RING_S * fs)) / fs  # an impact's oscillation dies out within this
    t_burst = -rng.uniform(0, 10.0)
    while t_burst < duration:
        length = rng.uniform(1.0, 8.0)
        rate_hz = rng.uniform(0.8, 3.0)  # impacts a second within a burst (gait, gestures)
        times = t_burst + np.cumsum(rng.exponential(1.0 / rate_hz, int(length * rate_hz) + 2))
        for t0 in times[(times < t_burst + length) & (times < duration)]:
            f0, zeta, amp = rng.uniform(1.5, 12.0), rng.uniform(0.2, 0.7), rng.lognormal(0.0, 0.5)
            a = int(np.ceil(t0 * fs))
            tau = a / fs - t0 + ring
            skip = max(0, -a)  # an impact that started before the signal: its tail only
            a = max(a, 0)
            seg = amp * np.exp(-zeta * 2 * np.pi * f0 * tau) * np.sin(2 * np.pi * f0 * np.sqrt(1 - zeta ** 2) * tau)
            seg = seg[skip:skip + n - a]
            x[a:a + len(seg)] += seg
        t_burst += length + rng.exponential(length)  # as much still time as motion, on average
    for _ in range(rng.poisson(duration / 20.0)):  # half-cell steps of a loose electrode
        x[int(rng.uniform(0, duration) * fs):] += rng.normal(0, 1.0)
    # the skin's stretch potential relaxes: a first-order high-pass, tau 0.1-0.5 s
    tau_s = rng.uniform(0.1, 0.5)
    alpha = tau_s / (tau_s + 1.0 / fs)
    y = lfilter([alpha, -alpha], [1.0, -alpha], x)
    y -= y.mean()
    rms = np.sqrt(np.mean(y ** 2))
    return y / rms if rms > 0 else y


def mains_hum(n, fs, rng):
    """50 or 60 Hz interference (n,) mV, with a third harmonic and a slow amplitude drift."""
    t = np.arange(n) / fs
    f0 = rng.choice([50.0, 60.0])
    amp = rng.uniform(*HUM_MV) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t))
    phase = rng.uniform(0, 2 * np.pi, 2)
    return amp * (np.sin(2 * np.pi * f0 * t + phase[0]) + 0.3 * np.sin(2 * np.pi * 3 * f0 * t + phase[1]))


def electrode_pop(n, fs, rng):
    """A step of half-cell potential (n,) mV at a random time, relaxing back exponentially."""
    t = np.arange(n) / fs
    t0 = rng.uniform(0, n / fs)
    step = rng.uniform(*POP_MV) * rng.choice([-1.0, 1.0])
    on = t >= t0
    out = np.zeros(n)
    out[on] = step * np.exp(-(t[on] - t0) / rng.uniform(*POP_TAU_S))
    return out


def noise_stretch(noise, kind, n, fs, rng):
    """``n`` samples of noise ``kind``: a random stretch of a random channel of an nstdb
    record, or the electrode-motion model. Mean removed."""
    if kind == "em":
        return electrode_motion(n, fs, rng)
    record = noise[kind]
    start = int(rng.integers(0, max(len(record) - n, 1)))
    seg = record[start:start + n, int(rng.integers(0, record.shape[1]))]
    if len(seg) < n:  # a strip longer than the stretch: tile it
        seg = np.resize(seg, n)
    return seg - seg.mean()


@dataclass(frozen=True)
class Recipe:
    """Which transformations an augmented view draws from, and the noise they use."""

    kinds: tuple
    noise: dict | None = None  # load_noise(...) when a kind needs nstdb noise

    def key(self):
        """A short, stable name for cache keys."""
        return "+".join(sorted(self.kinds)) if self.kinds else "none"


def transform_strip(x, beats, fs, recipe, rng):
    """``x`` (n,) mV transformed as ``recipe`` draws for one strip; (n,) at ``fs`` Hz.

    ``beats``: the strip's reference beat samples, for the SNR's QRS amplitude.
    """
    kinds = set(recipe.kinds)
    if not kinds or rng.random() < CLEAN_SHARE:
        return x
    y = np.asarray(x, dtype=np.float64).copy()
    n = len(y)
    if "gain" in kinds:
        y *= np.exp(rng.uniform(*np.log(GAIN_RANGE)))
    if "polarity" in kinds and rng.random() < POLARITY_SHARE:
        y = -y
    noises = [k for k in NOISE_KINDS if k in kinds]
    if noises and rng.random() < NOISE_SHARE:
        kind = noises[int(rng.integers(len(noises)))]
        noise = noise_stretch(recipe.noise, kind, n, fs, rng)
        y += nst_snr_gain(qrs_amplitude(y, beats, fs), noise, fs, rng.uniform(*SNR_DB)) * noise
    if "hum" in kinds and rng.random() < HUM_SHARE:
        y += mains_hum(n, fs, rng)
    if "baseline" in kinds:
        y += rng.uniform(-OFFSET_MV, OFFSET_MV)
        if rng.random() < POP_SHARE:
            y += electrode_pop(n, fs, rng)
    if "rate" in kinds and rng.random() < RATE_SHARE:
        device = int(rng.choice(DEVICE_RATES))
        y = resample(resample(y, fs, device), device, fs)[:n]
        if len(y) < n:
            y = np.pad(y, (0, n - len(y)), mode="edge")
    return y


def add_noise(x, noise, fs, snr_db, beats=None, definition="nst"):
    """``x`` (n,) plus ``noise`` (n,) scaled to ``snr_db``: nstdb's definition (``beats``, the
    reference beats, give the QRS amplitude) or ``"rms"`` (RMS of ``x`` over RMS of the noise)."""
    noise = np.asarray(noise, dtype=np.float64)
    noise = noise - noise.mean()
    if definition == "rms":
        return x + rms_snr_gain(x, noise, snr_db) * noise
    return x + nst_snr_gain(qrs_amplitude(x, beats, fs), noise, fs, snr_db) * noise

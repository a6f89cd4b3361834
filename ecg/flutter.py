"""Ventricular flutter and fibrillation: stretches of a lead with no QRS complexes, only a fast
wave (numpy only).

``flutter_intervals(filtered, fs)`` returns the stretches, in seconds, where the lead looks like
ventricular flutter (a regular sine-like wave at 150-300 /min) or coarse fibrillation (a less
regular one at 240-500 /min). There the beat detector still finds "beats" in the wave, and the
quality flag judges them unreadable (no QRS stands out of the signal around it), so without this
a lethal rhythm would be reported as noise. What sets the wave apart from a heart rhythm and
from noise, each judged over a 4-s window every second:

1. Power spectrum of the band-passed lead (0.5-40 Hz; Welch: three Hann-windowed 2-s
   segments, 0.5-Hz bins), its dominant frequency the largest bin of 1-12 Hz.
2. One oscillation: the dominant frequency is 2.5-9 Hz (150-540 /min) and the bins within
   +-0.5 Hz of it hold at least 60 % of the 1-40 Hz power. A QRS train spreads its power over
   many harmonics of the heart rate, muscle noise over the whole band, and electrode motion
   (bursts of damped 1.5-12 Hz ringing) over a wide low band.
3. No sharp edges: under 2 % of the power lies at 15-40 Hz, where a QRS complex (and muscle
   noise) puts much of its energy and a flutter wave almost none.
4. No baseline: under 30 % of the window's samples lie within 10 % of its largest deviation
   from its median. Between the QRS complexes of any rhythm that still pumps, the lead rests
   near its baseline for most of the cycle; a flutter wave never does.
5. A window passing 2-4 is flutter; ``MIN_WINDOWS`` such windows in a row make a stretch
   (one 4-s window can be a run of a few wide fast beats), reported as the span they cover.

Thresholds chosen on DS1 of the MIT-BIH Arrhythmia Database (record 207's episodes of
ventricular flutter against every other DS1 lead, clean and with nstdb noise):
docs/ROBUSTNESS.md, "Ventricular flutter". Fibrillation whose wave is irregular (its power
spread over more than about 1 Hz) or small beside the noise is not flagged: step 2 needs one
oscillation that dominates the lead.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .holter import v_runs
from .quality import merge_intervals

WINDOW_S = 4.0  # judged over this much signal: 12-30 flutter cycles, 4-12 beats of a heart rhythm
STEP_S = 1.0  # a window every this many seconds
SEGMENT_S = 2.0  # Welch segments of this length (0.5-Hz bins), half overlapping
DOMINANT_BAND_HZ = (1.0, 12.0)  # where the dominant frequency is looked for
FLUTTER_BAND_HZ = (2.5, 9.0)  # flutter and coarse fibrillation, 150-540 /min
TOTAL_BAND_HZ = (1.0, 40.0)  # the band the shares are of
PEAK_HALF_WIDTH_HZ = 0.5  # the oscillation's bins: the dominant one and its two neighbours ...
MIN_PEAK_SHARE = 0.6  # ... hold at least this share of the power
EDGE_BAND_HZ = (15.0, 40.0)  # QRS complexes and muscle noise
MAX_EDGE_SHARE = 0.02  # a flutter wave holds less than this share there
NEAR_BASELINE = 0.1  # a sample is at the baseline within this share of the window's largest deviation
MAX_BASELINE_SHARE = 0.3  # a flutter wave spends less than this share of its time there
MIN_WINDOWS = 2  # consecutive flutter windows that make a stretch (5 s)
WINDOW_STEPS = int(round(WINDOW_S / STEP_S))


def window_spectra(filtered, fs):
    """Welch power spectra of the 4-s windows of ``filtered`` (n,), one every ``STEP_S``.

    Returns ``(freqs, power)``: (b,) Hz and (w, b), w windows (none if the signal is shorter
    than one). Segment spectra are computed once per step and averaged three at a time.
    """
    seg = int(round(SEGMENT_S * fs))
    step = int(round(STEP_S * fs))
    per_window = int(round((WINDOW_S - SEGMENT_S) / STEP_S)) + 1
    n_seg = (len(filtered) - seg) // step + 1 if len(filtered) >= seg else 0
    freqs = np.fft.rfftfreq(seg, 1.0 / fs)
    if n_seg < per_window:
        return freqs, np.zeros((0, len(freqs)))
    segments = sliding_window_view(filtered, seg)[::step][:n_seg]
    segments = segments - segments.mean(axis=1, keepdims=True)
    seg_power = np.abs(np.fft.rfft(segments * np.hanning(seg), axis=1)) ** 2
    return freqs, sliding_window_view(seg_power, per_window, axis=0).mean(axis=-1)


def baseline_share(filtered, fs, windows):
    """Share of the samples of 4-s windows ``windows`` (k,: their indices, one every ``STEP_S``)
    of ``filtered`` (n,) within ``NEAR_BASELINE`` of the window's largest deviation from its
    median (step 4). Returns (k,)."""
    size = int(round(WINDOW_S * fs))
    step = int(round(STEP_S * fs))
    chosen = sliding_window_view(filtered, size)[np.asarray(windows, np.int64) * step]
    deviation = np.abs(chosen - np.median(chosen, axis=1, keepdims=True))
    largest = deviation.max(axis=1, keepdims=True)
    return np.mean(deviation <= NEAR_BASELINE * np.maximum(largest, 1e-12), axis=1)


def band_share(freqs, power, band, total):
    """Share of each window's ``total``-band power (w,) that lies in ``band`` (Hz)."""
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    return power[:, in_band].sum(axis=1) / total


def flutter_windows(filtered, fs):
    """Boolean (w,): which 4-s windows of ``filtered`` (n,), at ``fs`` Hz, pass steps 2-4."""
    freqs, power = window_spectra(filtered, fs)
    if not len(power):
        return np.zeros(0, bool)
    total = np.maximum(band_share(freqs, power, TOTAL_BAND_HZ, 1.0), 1e-30)
    searched = (freqs >= DOMINANT_BAND_HZ[0]) & (freqs <= DOMINANT_BAND_HZ[1])
    dominant = freqs[np.argmax(np.where(searched[None, :], power, -1.0), axis=1)]
    near_peak = np.abs(freqs[None, :] - dominant[:, None]) <= PEAK_HALF_WIDTH_HZ
    peak_share = (power * near_peak).sum(axis=1) / total
    edge_share = band_share(freqs, power, EDGE_BAND_HZ, total)
    hit = ((dominant >= FLUTTER_BAND_HZ[0]) & (dominant <= FLUTTER_BAND_HZ[1])
           & (peak_share >= MIN_PEAK_SHARE) & (edge_share < MAX_EDGE_SHARE))
    # step 4 only where the spectrum already says flutter: a median per window is the costly part
    candidates = np.flatnonzero(hit)
    hit[candidates] = baseline_share(filtered, fs, candidates) < MAX_BASELINE_SHARE
    return hit


def flutter_intervals(filtered, fs):
    """Stretches of ``filtered`` (n,: a lead band-passed 0.5-40 Hz, mV, ``fs`` Hz) that look like
    ventricular flutter or coarse fibrillation: (k, 2) float [start, end) in seconds, merged."""
    starts, lengths = v_runs(flutter_windows(filtered, fs))  # maximal runs of any flag, not only V
    keep = lengths >= MIN_WINDOWS
    # in steps: window i covers [i, i + WINDOW_STEPS); runs one window apart overlap, and merge
    spans = np.stack([starts[keep], starts[keep] + lengths[keep] - 1 + WINDOW_STEPS], axis=1)
    return merge_intervals(spans) * STEP_S

"""Signal quality of each detected beat: "good", "noisy" or "unreadable" (numpy only).

``beat_quality(x, peaks, fs)`` judges each beat by how far the QRS complexes around it
stand out of the noise, in the band where the detector looks for them:

1. QRS energy envelope of the lead, as the detector computes it
   (:func:`ecg.detect.qrs_energy_envelope`: 5-20 Hz band-pass, slope squared,
   100-ms moving average), in (mV/s)**2.
2. Each beat's level: the envelope's largest value within +-50 ms of its R peak.
3. The noise around it: the envelope's mean over the ``CONTEXT_S`` seconds on each
   side, leaving out every detected beat's QRS (+-``QRS_EXCLUSION_S``). In a clean
   lead that is the slope energy of P and T waves and the flat baseline; muscle and
   motion noise raise it.
4. Two SNRs in dB: the stretch's, the upper quartile of the levels of the beat and
   its ``STRETCH_BEATS`` neighbours on each side over the noise, and the beat's own. A
   stretch under ``UNREADABLE_DB`` makes its beats unreadable (the detector's
   detections there are too often not beats, and noise shapes what the network
   sees); a beat whose own SNR is under ``OWN_UNREADABLE_DB`` is too (mostly a noise
   spike the detector took for a beat, in a stretch that is otherwise fine). A stretch
   under ``NOISY_DB`` makes its beats noisy. Thresholds chosen on DS1 with nstdb
   noise added (docs/ROBUSTNESS.md).

   Neither SNR reads a beat's shape or timing, so ectopic beats are not judged noisy
   for being ectopic, the flaw of RR-ratio and template tests (Orphanidou et al. 2015)
   for arrhythmia work. The stretch's level is that of its louder beats because a wide
   PVC holds less slope energy than its normal neighbours (6 dB less in MIT-BIH record
   208): judged by its own level, or by a median in a run of PVCs, it would look noisy.
5. Flat stretches (a lead off: under ``FLAT_MV`` peak to peak over
   ``FLAT_WINDOW_S``) are unreadable, and a detection inside one is no beat
   (:func:`outside_flat_stretches`, which the callers of the detector apply). One of
   ``LEAD_OFF_S`` or more ends a run of beats (:func:`lead_on_runs`).

The unreadable stretches of the signal are each unreadable beat's share of it
(from half-way to its previous beat to half-way to its next, at most
``BEAT_SPAN_S`` each side), the whole stretch between two consecutive unreadable beats
(:func:`between_unreadable`), every stretch of ``BEATLESS_S`` or more without a detection
(:func:`beatless_stretches`) and the flat stretches, merged.
"""

import numpy as np

from .detect import qrs_energy_envelope, window_max
from .ec57 import in_ranges
from .signal import FLAT_MV

QUALITY_LABELS = ("good", "noisy", "unreadable")  # codes 0, 1, 2 of beat_quality
GOOD, NOISY, UNREADABLE = range(3)
LEVEL_HALF_WINDOW_S = 0.050  # the QRS's envelope peak lies within this of the R peak
QRS_EXCLUSION_S = 0.120  # each detected QRS's envelope hump: +-(half a wide QRS + half the envelope)
ENVELOPE_STEP_S = 0.010  # the envelope is read this often for the noise (it is a 100-ms average)
CONTEXT_S = 2.5  # noise measured over this much signal each side of a beat (2-4 beats)
STRETCH_BEATS = 3  # a stretch: a beat and this many neighbours each side (5 s at 70 bpm)
STRETCH_PERCENTILE = 75  # the stretch's level: its louder beats' (normal beats, in a run of PVCs)
# thresholds on DS1 with nstdb noise (validation split, nst protocol at 12 .. -6 dB), by the rule:
# the lowest whole-dB stretch threshold at which, in every condition at 0 dB or more, at most 5 % of
# the detections left readable are not beats, with at most 1 % of clean DS1 beats unreadable.
# It gives 1.0 % of clean beats (records 108, 207, 203: noise and flutter); at 0 dB 98.0 % (ma)
# and 95.6 % (em) of the readable detections are beats. A stricter rule costs PVCs: docs/ROBUSTNESS.md
UNREADABLE_DB = 12.0  # a stretch SNR under this makes its beats unreadable ...
OWN_UNREADABLE_DB = 6.0  # ... as does a beat's own SNR under this
NOISY_DB = 18.0  # a stretch SNR under this makes its beats noisy
FLAT_WINDOW_S = 1.0  # a lead off is judged over this much signal ...
# ... and is flatter than ecg.signal.FLAT_MV peak to peak: no ECG is that flat
# a lead flat this long was off, not glitching: put back on, its electrode may sit elsewhere and its
# beats take another size and shape, so the beats after it are a new signal (:func:`lead_on_runs`)
LEAD_OFF_S = 60.0
BEAT_SPAN_S = 1.0  # an unreadable beat makes at most this much signal unreadable each side
# no heart stops this long and beats on (the longest asystoles of reflex syncope last some 30 s):
# a stretch without a detection this long held no ECG, a lead off carrying the amplifier's noise
BEATLESS_S = 60.0
# between two beats a pause apart the signal is P waves and baseline: it moves by under 0.25 mV in
# 14 of the 15 pauses of DS1's MLII that its reference beats confirm (the 15th, in 208, lies in a
# 3-mV swing), by 1.6 to 4.4 mV where a jump and the amplifier's recovery hid the QRS complexes
# (116, 203, 208: no pause). Chosen on DS1.
PAUSE_BASELINE_MV = 1.0
T_WAVE_S = 0.45  # left out after the first beat (its T wave) ...
Q_LEAD_S = 0.10  # ... and before the second (its Q wave)


def baseline_moves(x, fs):
    """True when ``x`` (n,), the signal from one R peak to the next (mV, ``fs`` Hz), moves by more
    than ``PAUSE_BASELINE_MV`` (5th to 95th percentile) between the first beat's T wave and the
    second's Q: a lead jumping or recovering, whose QRS complexes may be hidden, not a pause."""
    between = np.asarray(x, dtype=np.float64)[int(T_WAVE_S * fs):len(x) - int(Q_LEAD_S * fs)]
    if len(between) < 2:
        return False
    low, high = np.percentile(between, [5, 95])
    return bool(high - low > PAUSE_BASELINE_MV)


def noise_levels(env, peaks, fs):
    """The envelope's mean (k,) over ``CONTEXT_S`` each side of each beat, outside every QRS (step 3).

    ``env``: (n,) the QRS energy envelope; ``peaks``: (k,) sorted R-peak samples.
    NaN where the context holds no sample outside QRS complexes. The envelope is a
    100-ms moving average, so it is read every ``ENVELOPE_STEP_S``: a long signal's
    arrays stay small.
    """
    step = max(int(round(ENVELOPE_STEP_S * fs)), 1)
    env, at = env[::step], np.asarray(peaks) // step
    n = len(env)
    reach = int(QRS_EXCLUSION_S * fs / step)
    # +1 where a QRS span starts, -1 past its end: inside a span the running sum is positive
    edges = (np.bincount(np.clip(at - reach, 0, n), minlength=n + 1)
             - np.bincount(np.clip(at + reach + 1, 0, n), minlength=n + 1))
    outside = np.cumsum(edges[:n]) == 0
    energy = np.concatenate([[0.0], np.cumsum(np.where(outside, env, 0.0))])
    count = np.concatenate([[0], np.cumsum(outside)])
    context = int(CONTEXT_S * fs / step)
    lo, hi = np.clip(at - context, 0, n), np.clip(at + context + 1, 0, n)
    samples = count[hi] - count[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(samples > 0, (energy[hi] - energy[lo]) / samples, np.nan)


def stretch_levels(levels):
    """The upper quartile (k,) of each beat's level and its ``STRETCH_BEATS`` neighbours' on each
    side (the first and last beats repeated past the signal's ends)."""
    padded = np.pad(np.asarray(levels, dtype=np.float64), STRETCH_BEATS, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * STRETCH_BEATS + 1)
    return np.percentile(windows, STRETCH_PERCENTILE, axis=1)


def snr_db(level, noise):
    """10 log10(level / noise), +inf where the noise is 0 or unknown (no context: nothing to judge)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(np.maximum(level, 1e-30) / noise)
    return np.where(np.isfinite(noise) & (noise > 0), out, np.inf)


def flat_stretches(x, fs):
    """(k, 2) sample intervals [start, end) of ``x`` (n,) flatter than ``FLAT_MV`` (step 5)."""
    size = max(int(FLAT_WINDOW_S * fs), 1)
    m = len(x) // size
    if m == 0:
        return np.zeros((0, 2), np.int64)
    blocks = x[:m * size].reshape(m, size)
    flat = np.ptp(blocks, axis=1) < FLAT_MV
    starts = np.flatnonzero(flat) * size
    return merge_intervals(np.stack([starts, starts + size], axis=1))


def outside_flat_stretches(peaks, flat):
    """``peaks`` (k,) without those inside the ``flat`` stretches (f, 2) (:func:`flat_stretches`, step 5).

    A lead off holds no QRS complex, yet after a beat the detector's search-back takes the
    strongest candidate of the gap, and in a lead held at a constant level those are rounding
    dust (slope energy near 1e-35): a detection every second or two, 5,060 in a 10-h lead off.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    return peaks[~in_ranges(peaks, np.asarray(flat, dtype=np.int64).reshape(-1, 2) - [0, 1])]  # ends inclusive


def lead_on_runs(peaks, flat, fs, min_s=LEAD_OFF_S):
    """The run (k,) each of ``peaks`` lies in, counted from 0: a flat stretch of ``min_s`` or
    more (a lead off, among ``flat`` (f, 2), samples at ``fs`` Hz) ends one run and starts the next.

    The beats of a run are grouped and pooled as a signal of their own (``ecg.pipeline``,
    ``ecg.chunks``), as the parts of a recording with gaps are, so no group template, amplitude
    scale or pool mixes the beats of two placements of the electrode, and none changes with how
    many detections a lead off held.
    """
    flat = np.asarray(flat, dtype=np.int64).reshape(-1, 2)
    off = flat[flat[:, 1] - flat[:, 0] >= min_s * fs]
    return np.searchsorted(off[:, 0], np.asarray(peaks, dtype=np.int64), side="right").astype(np.int64)


def merge_intervals(intervals, dtype=np.int64):
    """Sorted union of ``intervals`` (k, 2) [start, end): overlapping or touching ones merged
    (samples, or seconds with ``dtype`` float)."""
    iv = np.asarray(intervals, dtype=dtype).reshape(-1, 2)
    if not len(iv):
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    ends = np.maximum.accumulate(iv[:, 1])
    new = np.concatenate([[True], iv[1:, 0] > ends[:-1]])
    starts = iv[new, 0]
    last = np.concatenate([np.flatnonzero(new)[1:] - 1, [len(iv) - 1]])
    return np.stack([starts, ends[last]], axis=1)


def beat_spans(peaks, n, fs):
    """Each beat's share of the signal (k, 2): half-way to its neighbours, at most ``BEAT_SPAN_S``."""
    peaks = np.asarray(peaks, dtype=np.int64)
    cap = int(BEAT_SPAN_S * fs)
    mid = (peaks[1:] + peaks[:-1]) // 2
    lo = np.maximum(np.concatenate([[0], mid]), peaks - cap)
    hi = np.minimum(np.concatenate([mid, [n]]), peaks + cap)
    return np.stack([np.maximum(lo, 0), np.minimum(hi, n)], axis=1)


def between_unreadable(peaks, quality):
    """(m, 2) [start, end) from each unreadable beat of ``peaks`` (k,) to the next when that one is
    unreadable too (``quality`` (k,), :func:`beat_quality`'s).

    Between two such beats no readable beat was found, so whatever beats the signal held there
    went unseen: a lead off carrying noise (a floating electrode, the amplifier's own noise)
    holds a detection every few seconds, or minutes, each unreadable, and without this only a
    second each side of them would be.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    both = (quality[:-1] == UNREADABLE) & (quality[1:] == UNREADABLE)
    return np.stack([peaks[:-1][both], peaks[1:][both]], axis=1)


def beatless_stretches(peaks, n, fs):
    """(m, 2) [start, end) stretches of a signal of ``n`` samples at ``fs`` Hz that hold none of
    ``peaks`` (k,, sorted) for ``BEATLESS_S`` or more: between two consecutive detections, or from
    the signal's start to the first or from the last to its end.

    A lead off with a quiet noise on it (the amplifier's own, some 5-10 uV RMS) is not flat, and
    the detector finds next to nothing in it: without this its hours were readable, beatless time.
    """
    edges = np.concatenate([[0], np.asarray(peaks, dtype=np.int64), [n]])
    long = np.flatnonzero(np.diff(edges) >= BEATLESS_S * fs)
    return np.stack([edges[long], edges[long + 1]], axis=1)


def beat_snrs(env, peaks, fs):
    """Each beat's stretch and own SNR in dB, ``(stretch, own)``, (k,) each (steps 2-4), from the
    QRS energy envelope ``env`` (n,) of its lead and the R peaks ``peaks`` (k,) at ``fs`` Hz."""
    if not len(peaks):
        return np.zeros(0), np.zeros(0)
    levels = window_max(env, peaks, int(LEVEL_HALF_WINDOW_S * fs))
    noise = noise_levels(env, peaks, fs)
    return snr_db(stretch_levels(levels), noise), snr_db(levels, noise)


def beat_quality(x, peaks, fs, env=None, flat=None, snrs=None):
    """Signal quality of each beat of one lead, and the unreadable stretches.

    Parameters
    ----------
    x : ndarray, shape (n,)
        The lead in mV at ``fs`` Hz (as the detector read it).
    peaks : ndarray of int, shape (k,)
        The detected R peaks, sorted sample indices into ``x``.
    fs : float
        Sampling rate in Hz.
    env : ndarray, shape (n,), optional
        The QRS energy envelope of ``x`` when the caller has it (the detector's).
    flat : ndarray of int, shape (f, 2), optional
        The :func:`flat_stretches` of ``x`` when the caller has them (the detections' check).
    snrs : pair of ndarrays, shape (k,) each, optional
        The :func:`beat_snrs` of ``peaks`` when the caller has them (the Holter's pause count).

    Returns
    -------
    quality : ndarray of np.int8, shape (k,)
        ``GOOD``, ``NOISY`` or ``UNREADABLE`` (names in ``QUALITY_LABELS``).
    unreadable : ndarray of np.int64, shape (m, 2)
        Sorted, disjoint [start, end) sample intervals of ``x`` judged unreadable.
    """
    x = np.asarray(x, dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.int64)
    flat = flat_stretches(x, fs) if flat is None else np.asarray(flat, dtype=np.int64).reshape(-1, 2)
    quality = np.zeros(len(peaks), np.int8)
    if len(peaks):
        if snrs is None:
            snrs = beat_snrs(qrs_energy_envelope(x, fs)[2] if env is None else env, peaks, fs)
        stretch, own = snrs
        quality[stretch < NOISY_DB] = NOISY
        quality[(stretch < UNREADABLE_DB) | (own < OWN_UNREADABLE_DB)] = UNREADABLE
        quality[in_ranges(peaks, flat - [0, 1])] = UNREADABLE  # in_ranges' ends are inclusive
    spans = beat_spans(peaks, len(x), fs)[quality == UNREADABLE]
    return quality, merge_intervals(np.concatenate([spans, between_unreadable(peaks, quality),
                                                    beatless_stretches(peaks, len(x), fs), flat]))

"""The no-pause rule: V calls the patient's rhythm does not need are called N.

A PVC resets the rhythm: a pause follows it (unless it is interpolated, which is rare). An
artefact the detector took for a beat does not, nor does a normal beat an artefact fell on. So a
V call in a regular rhythm is N when the rhythm goes on around it as if it were not there. Rules
of the service, not of a model card; chosen on DS1 out of fold (docs/ROBUSTNESS.md, "V calls the
rhythm does not need"). :func:`no_pause_mask`, for ``ecg.decision.classify``:

1. The rhythm's beats: detections not called V and alike to their group's median beat
   (``RHYTHM_MIN_CORR``).
2. The rhythm's RR around each call: the median of the intervals between consecutive detections
   that are both its beats (``RHYTHM_HALF_INTERVALS`` each side, at least ``RHYTHM_MIN_INTERVALS``),
   regular when three quarters of them lie within ``RHYTHM_REGULAR`` of it (not atrial
   fibrillation, where early beats with no pause are common). No interval spans two signals of
   one request (``SIGNAL_GAP_S``).
3. First form: the rhythm's beats on either side of the call lie under ``NO_PAUSE_SPAN`` x its RR
   apart (an artefact between two beats), in a rhythm faster than 50 bpm (``NO_PAUSE_MAX_RR_S``):
   in a slower one a PVC can fall between two beats without moving them (interpolated; in an AV
   block whose P waves go undetected, the rhythm's RR is two or more of the atria's cycles).
4. Second form: the call comes on time (``ON_TIME``) with the rhythm's own ST segment and T wave
   (``REPOLARISATION_*``, :func:`repolarisation_differences`): a PVC changes how the ventricles
   repolarise, a normal beat an artefact fell on keeps the rhythm's repolarisation.
5. Third form, for the calls the first two left V: the call's window holds the rhythm's QRS,
   undetected, where the rhythm's next beat was due (``HIDDEN_BEAT_*``, :func:`hidden_beat_offsets`,
   :func:`undetected`): an artefact the detector took instead of that beat (of two detections
   closer than its refractory period it keeps one). After a PVC the ventricles are refractory
   then: no QRS of the rhythm's there.

The rhythm's median stretches around the calls (forms 2 and 3) are sorted a block of calls at a
time (:func:`rhythm_medians`), so that memory stays bounded on a day's pool.
"""

import numpy as np

from . import MODEL_FS
from .dsp import nanquantile_rows
from .features import RR_FEATURE_NAMES
from .pipeline import PREPROCESSING, QRS_CORE_SAMPLES

_RR_PREV_S = RR_FEATURE_NAMES.index("rr_prev_s")
_HAS_PREV = RR_FEATURE_NAMES.index("has_prev")
_TEMPLATE_CORR = RR_FEATURE_NAMES.index("template_corr")
_EPS = 1e-7  # no division by zero: a flat stretch correlates 0 with anything

# 1. The rhythm's beats: alike to their group's median beat at least this much. A PVC's T wave the
# detector took for a beat in the pause after it is not one (MIT-BIH 119 under noise), nor are most
# artefacts the network calls N.
RHYTHM_MIN_CORR = 0.3
# 2. The rhythm's RR
RHYTHM_HALF_INTERVALS = 10  # the median of the intervals between consecutive detections that are
# both the rhythm's beats, of as many intervals each side of the call ...
RHYTHM_MIN_INTERVALS = 5  # ... at least this many of them ...
RHYTHM_REGULAR = 0.1  # ... three quarters of them within this share of their median (not AF)
SIGNAL_GAP_S = 1e6  # between two signals of one request (a lead off): no interval spans it
# 3. First form: the rhythm's beats either side of the call lie under this x its RR apart ...
NO_PAUSE_SPAN = 1.1
NO_PAUSE_MAX_RR_S = 1.2  # ... in a rhythm faster than 50 bpm: in a slower one (bradycardia, an AV block
# whose P waves go undetected) a PVC can fall between two beats without moving them, interpolated
# (docs/ROBUSTNESS.md, "Blocked P waves")
# 4. Second form
ON_TIME = 0.1  # the rhythm's beats before and after the call each lie within this share of its RR from it
REPOLARISATION_S = (0.150, 0.450)  # after the R peak: the ST segment and the T wave, short of the next QRS at 130 bpm
REPOLARISATION_MAX_DIFF = 0.04  # RMS difference from the rhythm's, means removed, x the QRS scale of the windows ...
# ... and at most this many times the rhythm's own beat-to-beat spread (the same difference, median over
# its beats): an artefact leaves a difference of the order of the rhythm's noise; a PVC's goes beyond it
# even in a lead whose T waves are small beside its QRS, where the absolute difference stays small
REPOLARISATION_MAX_SPREADS = 3.0
RHYTHM_MEDIAN_HALF_BEATS = 8  # the rhythm's median beat over this many of its beats each side of the call ...
RHYTHM_MEDIAN_MIN_BEATS = 5  # ... at least this many in all
RHYTHM_MEDIAN_BLOCK_CALLS = 256  # calls whose medians are sorted at once: some 7 MB at most, whatever the pool
# 5. Third form
HIDDEN_BEAT_TOLERANCE = 0.1  # sought within this share of the rhythm's RR of where its next beat was due ...
HIDDEN_BEAT_MIN_CORR = 0.95  # ... a stretch this alike to the rhythm's median QRS (the core the pooling reads) ...
HIDDEN_BEAT_SIZE = (0.5, 2.0)  # ... of an RMS within these multiples of the median's ...
HIDDEN_BEAT_MIN_OFFSET_S = 0.05  # ... at least this far from the call's own R peak (not the call itself) ...
HIDDEN_BEAT_MIN_GAP_S = 0.1  # ... and no other detection this close to it: a beat the detector missed


def beat_times(features):
    """Each beat's time in seconds (n,), from the RR before it (``features`` (n, k) as
    ``ecg.features`` names them); a beat with no previous one starts a signal ``SIGNAL_GAP_S``
    after the last."""
    f = np.asarray(features)
    return np.cumsum(np.where(f[:, _HAS_PREV] == 1, f[:, _RR_PREV_S].astype(np.float64), SIGNAL_GAP_S))


def no_pause_mask(is_v, features, windows=None):
    """V calls (n,) that no pause follows in a regular rhythm: the rhythm's beats before and after one
    lie under ``NO_PAUSE_SPAN`` x the rhythm's RR apart (``RHYTHM_*``), that RR under
    ``NO_PAUSE_MAX_RR_S``, or, given the beats'
    ``windows`` (n, 360, 2) (``ecg.pipeline``), it comes on time (``ON_TIME``) with the rhythm's
    own repolarisation (:func:`repolarisation_differences`), or the rhythm's QRS lies undetected in
    its window where the rhythm's next beat was due (:func:`hidden_beat_offsets`, :func:`undetected`).
    ``is_v`` (n,) the calls, ``features`` (n, k) as ``ecg.features`` names them."""
    is_v = np.asarray(is_v, dtype=bool)
    no_pause = np.zeros(len(is_v), bool)
    rhythm = ~is_v & (np.asarray(features)[:, _TEMPLATE_CORR] >= RHYTHM_MIN_CORR)
    rhythm_beats = np.flatnonzero(rhythm)
    calls = np.flatnonzero(is_v)
    if len(rhythm_beats) < 2 or not len(calls):
        return no_pause
    t = beat_times(features)
    # interval j runs from detection j to detection j + 1; NaN unless both are the rhythm's beats
    rhythm_intervals = np.where(rhythm[:-1] & rhythm[1:], np.diff(t), np.nan)
    h = RHYTHM_HALF_INTERVALS
    padded = np.pad(rhythm_intervals, h, constant_values=np.nan)
    around = np.lib.stride_tricks.sliding_window_view(padded, 2 * h)[calls]  # intervals i-h .. i+h-1
    known = np.count_nonzero(~np.isnan(around), axis=1) >= RHYTHM_MIN_INTERVALS
    calls, around = calls[known], around[known]
    if not len(calls):
        return no_pause
    rr = nanquantile_rows(around, 0.5)
    regular = nanquantile_rows(np.abs(around / rr[:, None] - 1), 0.75) < RHYTHM_REGULAR
    after = np.searchsorted(rhythm_beats, calls)  # the rhythm's first beat after each call
    inside = regular & (after >= 1) & (after < len(rhythm_beats))
    after = np.clip(after, 1, len(rhythm_beats) - 1)
    span = t[rhythm_beats[after]] - t[rhythm_beats[after - 1]]
    no_pause[calls] = inside & (span < NO_PAUSE_SPAN * rr) & (rr < NO_PAUSE_MAX_RR_S)
    if windows is not None:
        before_s, after_s = t[calls] - t[rhythm_beats[after - 1]], t[rhythm_beats[after]] - t[calls]
        on_time = inside & (np.abs(before_s / rr - 1) < ON_TIME) & (np.abs(after_s / rr - 1) < ON_TIME)
        differences, spreads = repolarisation_differences(windows, calls[on_time], rhythm_beats, after[on_time])
        own = (differences < REPOLARISATION_MAX_DIFF) & (differences < REPOLARISATION_MAX_SPREADS * spreads)
        no_pause[calls[on_time]] |= own
        sought = inside & ~no_pause[calls]  # the calls the first two forms left V
        offsets = hidden_beat_offsets(windows, calls[sought], rr[sought] - before_s[sought], rr[sought],
                                      rhythm_beats, after[sought])
        no_pause[calls[sought]] |= undetected(t, calls[sought], offsets)
    return no_pause


def rhythm_medians(stretches, rhythm_beats, after):
    """The rhythm's median stretch around each call and its spread: (c, m) the median of
    ``stretches`` (n, m) over the rhythm's beats ``RHYTHM_MEDIAN_HALF_BEATS`` each side of
    ``rhythm_beats[after]`` (``after`` (c,): the rhythm's first beat after each call), and (c,) the
    median of those beats' RMS differences from it, means removed; NaN and 0 with fewer than
    ``RHYTHM_MEDIAN_MIN_BEATS`` of them. One sort per ``RHYTHM_MEDIAN_BLOCK_CALLS`` calls
    (``ecg.dsp.nanquantile_rows``), so that memory stays bounded on a day's pool."""
    k = RHYTHM_MEDIAN_HALF_BEATS
    after = np.asarray(after)
    medians = np.full((len(after), stretches.shape[1]), np.nan)
    spreads = np.zeros(len(after))
    for start in range(0, len(after), RHYTHM_MEDIAN_BLOCK_CALLS):
        around = after[start:start + RHYTHM_MEDIAN_BLOCK_CALLS, None] + np.arange(-k, k)
        known = (around >= 0) & (around < len(rhythm_beats))
        near = np.where(known[:, :, None], stretches[rhythm_beats[np.clip(around, 0, len(rhythm_beats) - 1)]], np.nan)
        c, _, m = near.shape
        block = nanquantile_rows(near.transpose(0, 2, 1).reshape(c * m, 2 * k), 0.5).reshape(c, m)
        enough = known.sum(axis=1) >= RHYTHM_MEDIAN_MIN_BEATS
        medians[start:start + c][enough] = block[enough]
        own = np.std(near[enough] - block[enough, None, :], axis=-1)  # RMS about the mean; NaN beyond the rhythm's ends
        spreads[start:start + c][enough] = nanquantile_rows(own, 0.5)
    return medians, spreads


def repolarisation_differences(windows, calls, rhythm_beats, after):
    """How far each of ``calls`` (c,) beat indices repolarises unlike the rhythm, and how far the
    rhythm's own beats do: (c,) the RMS difference, means removed, of its ``REPOLARISATION_S``
    stretch from the rhythm's median of it, and (c,) the rhythm's spread (:func:`rhythm_medians`),
    both in the windows' units (x their group's QRS scale); inf and 0 with too few of the rhythm's
    beats. ``windows`` (n, 360, 2) as ``ecg.pipeline`` cuts them (``PREPROCESSING["window_samples"]``)."""
    r_peak = PREPROCESSING["window_samples"][0]  # samples before the R peak: its index in a window
    lo, hi = (r_peak + round(s * MODEL_FS) for s in REPOLARISATION_S)
    stretch = windows[:, lo:hi, 0]
    medians, spreads = rhythm_medians(stretch, rhythm_beats, after)
    differences = np.std(stretch[calls] - medians, axis=-1)  # the RMS difference, means removed
    return np.where(np.isnan(differences), np.inf, differences), spreads


def hidden_beat_offsets(windows, calls, due_s, rr, rhythm_beats, after):
    """(c,) where each of ``calls`` (c,) beat indices holds the rhythm's QRS in its window, in seconds
    from its R peak; NaN where it holds none. Within ``HIDDEN_BEAT_TOLERANCE`` x ``rr`` (c,) s of
    ``due_s`` (c,) s, the stretch as long as the QRS core (``ecg.pipeline.QRS_CORE_SAMPLES``) most
    alike to the rhythm's median core (:func:`rhythm_medians`), if correlated at least
    ``HIDDEN_BEAT_MIN_CORR`` and of an RMS within ``HIDDEN_BEAT_SIZE`` x the median's.
    ``windows`` (n, 360, 2)."""
    lo, hi = QRS_CORE_SAMPLES
    m = hi - lo
    out = np.full(len(calls), np.nan)
    if not len(calls):
        return out
    cores, _ = rhythm_medians(windows[:, lo:hi, 0], rhythm_beats, after)  # spreads unused: a few sorts
    cores = cores - cores.mean(axis=1, keepdims=True)
    first = np.maximum(lo + np.round((due_s - HIDDEN_BEAT_TOLERANCE * rr) * MODEL_FS).astype(int), 0)
    last = np.minimum(lo + np.round((due_s + HIDDEN_BEAT_TOLERANCE * rr) * MODEL_FS).astype(int), windows.shape[1] - m)
    for i in np.flatnonzero(~np.isnan(cores[:, 0]) & (first <= last)):
        segment = windows[calls[i], first[i]:last[i] + m, 0].astype(np.float64)
        # each m-sample stretch's norm about its own mean from running sums; the core's mean is 0,
        # so its dot product with a stretch needs no mean removed (ecg.features.template_correlation
        # on every stretch gives the same values, far slower on PVC-rich requests: docs/PERFORMANCE.md)
        sums, squares = (np.convolve(v, np.ones(m), mode="valid") for v in (segment, segment ** 2))
        norms = np.sqrt(np.maximum(squares - sums ** 2 / m, 0))
        core_norm = max(np.linalg.norm(cores[i]), _EPS)
        sizes = norms / core_norm
        correlations = np.correlate(segment, cores[i], mode="valid") / np.maximum(norms * core_norm, _EPS)
        best = np.argmax(correlations)
        if correlations[best] >= HIDDEN_BEAT_MIN_CORR and HIDDEN_BEAT_SIZE[0] <= sizes[best] <= HIDDEN_BEAT_SIZE[1]:
            out[i] = (first[i] + best - lo) / MODEL_FS
    return out


def undetected(times, calls, offsets):
    """(c,) whether what lies ``offsets`` (c,) s from each of ``calls`` (c,) beat indices, at least
    ``HIDDEN_BEAT_MIN_OFFSET_S`` from it, has no other detection within ``HIDDEN_BEAT_MIN_GAP_S``
    (``times`` (n,) s, the detections'); False where an offset is NaN."""
    at = times[calls] + offsets
    neighbours = np.clip(np.searchsorted(times, at)[:, None] + np.arange(-2, 2), 0, len(times) - 1)
    gaps = np.where(neighbours == calls[:, None], np.inf, np.abs(times[neighbours] - at[:, None]))
    return (np.abs(offsets) >= HIDDEN_BEAT_MIN_OFFSET_S) & (gaps.min(axis=1, initial=np.inf) > HIDDEN_BEAT_MIN_GAP_S)

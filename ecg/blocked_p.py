"""Small V calls with no T wave after them are N: a blocked P wave is not a PVC.

In an atrioventricular block a P wave that no QRS complex follows stands alone between two
conducted beats, and the detector, finding nothing for a whole RR, may take it for a beat; the
network, shown a small wide hump unlike the rhythm's beats, calls it V. A PVC is as large as
the beats beside it or larger, and the ventricles repolarise after it (a T wave); a blocked P
wave is small beside them, and nothing follows it. A rule of the service, not of a model card;
chosen on DS1 out of fold (docs/ROBUSTNESS.md, "Blocked P waves"). :func:`small_without_t_wave_mask`,
for ``ecg.decision.classify``:

1. The call's size reference: the smaller of its two adjacent detections' QRS sizes
   (:func:`neighbour_qrs_size`). Adjacent beats, under a couple of seconds away, swing with the
   call as breathing swings the lead's size; the smaller one, so that an artefact on one
   neighbour (or a neighbour at another phase of a deep breath) cannot make a PVC look small.
2. Small: the call's QRS core under ``SMALL_SHARE`` of that reference, and under ``GROUP_SHARE``
   of its group's median core (the unit of the served windows): two artefacts either side of a PVC
   can make both its neighbours large, not its group's median.
3. No T wave: nothing in its repolarisation (``ecg.no_pause.REPOLARISATION_S``) as large as
   ``T_WAVE_MIN_SHARE`` of that reference.
"""

import numpy as np

from . import MODEL_FS
from .features import RR_FEATURE_NAMES
from .no_pause import REPOLARISATION_S
from .pipeline import PREPROCESSING, QRS_CORE_SAMPLES

_HAS_PREV = RR_FEATURE_NAMES.index("has_prev")

# 2. Small: a blocked P wave's QRS-core peak to peak is a median 0.22 of its smaller neighbour's (DS1 out of fold,
# the other lead as a 2:1 block), a PVC's 1.2 (MLII; 1st percentile 0.55) ...
SMALL_SHARE = 0.3
GROUP_SHARE = 0.4  # ... and under this of its group's median (which the blocked P waves themselves lower)
# 3. No T wave: in its repolarisation (REPOLARISATION_S, 150 to 450 ms after the R peak) a PVC's largest
# deflection is 0.2 of its smaller neighbour's QRS or more (DS1's 5th percentile 0.22-0.24), a blocked P
# wave's a median 0.08
T_WAVE_MIN_SHARE = 0.2


def neighbour_qrs_size(qrs_size, features):
    """(n,) the smaller of the QRS sizes of the detections before and after each beat within its
    signal (the one it has at a signal's edge; NaN for a beat alone).

    ``qrs_size`` (n,): each beat's QRS core peak to peak (``ecg.pipeline.Beats.qrs_size_mv``);
    ``features`` (n, k) as ``ecg.features`` names them (``has_prev``: the beat before is of the
    same signal, no lead off between)."""
    size = np.asarray(qrs_size, dtype=np.float64)
    joined = np.asarray(features)[1:, _HAS_PREV] == 1  # beat i and i + 1 are of one signal
    before = np.full(len(size), np.nan)
    after = np.full(len(size), np.nan)
    before[1:] = np.where(joined, size[:-1], np.nan)
    after[:-1] = np.where(joined, size[1:], np.nan)
    return np.fmin(before, after)


def small_without_t_wave_mask(is_v, windows, qrs_size, neighbour_size):
    """V calls (n,) small beside their neighbours with no T wave after them.

    ``is_v`` (n,) the calls; ``windows`` (n, 360, 2) the beats' windows (``ecg.pipeline``: each
    scaled by its group's median QRS size, so a window's after-QRS stretch over its own core is
    the beat's own ratio); ``qrs_size``, ``neighbour_size`` (n,) in one unit (mV):
    ``Beats.qrs_size_mv`` and :func:`neighbour_qrs_size`."""
    calls = np.flatnonzero(is_v)
    mask = np.zeros(len(is_v), bool)
    if not len(calls):
        return mask
    r_peak = PREPROCESSING["window_samples"][0]
    t_lo, t_hi = (r_peak + round(s * MODEL_FS) for s in REPOLARISATION_S)
    lo, hi = QRS_CORE_SAMPLES
    w = np.asarray(windows)[calls, :, 0]
    after = np.ptp(w[:, t_lo:t_hi], axis=1)
    core = np.ptp(w[:, lo:hi], axis=1)
    size, reference = np.asarray(qrs_size)[calls], np.asarray(neighbour_size)[calls]
    after_size = after / np.maximum(core, 1e-9) * size  # back to the size's unit
    small = (size < SMALL_SHARE * reference) & (core < GROUP_SHARE)
    mask[calls] = small & (after_size < T_WAVE_MIN_SHARE * reference)
    return mask

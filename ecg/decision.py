"""From the network's V probability to a beat label, with the model card's parameters.

``decision`` is the model card's ``decision`` object::

    {"calibration": {"method": "platt", "a": 1.0, "b": 0.0},
     "threshold": 0.5,
     "ruleguard": {"enabled": true, "rr_tolerance": 0.1, "max_qrs_width_s": 0.1},
     "pooling": {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216],
                 "pool_size_beats": 4096}}

``pooling`` (optional): one label per morphology within a pool of beats, see
:func:`pool_by_morphology`: with ``pool_size_beats`` the pool is the whole signal (cut into
blocks of that many beats from its start only from about 1.5 times that many: :func:`pool_blocks`),
without it the signal's groups of ~16 beats (``Beats.groups``). Training fits these on the DS1 validation split
(``python -m train.pooling`` the pooling); the service only applies them.
"""

from typing import NamedTuple

import numpy as np

from . import MODEL_FS
from .dsp import expit, nanquantile_rows
from .features import RR_FEATURE_NAMES, groups_within
from .pipeline import PREPROCESSING, QRS_CORE_SAMPLES
from .quality import GOOD, NOISY, UNREADABLE

_RR_PREV = RR_FEATURE_NAMES.index("rr_prev_ratio")
_RR_NEXT = RR_FEATURE_NAMES.index("rr_next_ratio")
_RR_PREV_S = RR_FEATURE_NAMES.index("rr_prev_s")
_QRS_S = RR_FEATURE_NAMES.index("qrs_width_s")
_HAS_PREV = RR_FEATURE_NAMES.index("has_prev")
_LOCAL_RR_S = RR_FEATURE_NAMES.index("local_rr_s")
_HAS_NEXT = RR_FEATURE_NAMES.index("has_next")
_QRS_WIDTH_RATIO = RR_FEATURE_NAMES.index("qrs_width_ratio")
_TEMPLATE_CORR = RR_FEATURE_NAMES.index("template_corr")
_PREV_RR_PREV = RR_FEATURE_NAMES.index("prev_rr_prev_ratio")
_NEXT_RR_NEXT = RR_FEATURE_NAMES.index("next_rr_next_ratio")
_EPS = 1e-7
_MAX_LOGIT = float(np.log(1 - _EPS) - np.log(_EPS))  # logit's bound, 16.1
# what ruleguard_mask reads: a card with any other RuleGuard setting was tuned by code
# that knows a test this one does not apply, and would be served other labels than tuned
RULEGUARD_KEYS = frozenset({"enabled", "rr_tolerance", "max_qrs_width_s"})
# likewise for the pooling ("chosen_on" records the study that chose it)
POOLING_KEYS = frozenset({"min_corr", "own_weight", "core_samples", "pool_size_beats", "chosen_on"})
# rows of the alike matrix computed at once: a pool of m beats needs 8 * BLOCK_ROWS * m bytes
# (8 MB for a 4,096-beat pool) instead of 8 * m * m
BLOCK_ROWS = 256
# the largest pool_size_beats a card may set: pools of up to ~1.5 x this many beats keep a
# request's pooling work linear in its beats (~6,000 comparisons a beat at 4,096)
MAX_POOL_SIZE_BEATS = 8192
# The patient's own rhythm (own_rhythm_mask): a rule of the service, not of a card, like the
# quality flag's; it reads no network output. Chosen on DS1's labels (docs/MODEL.md).
OWN_RHYTHM_SHARE = 0.5  # a beat alike to more than this share of its pool has the dominant shape
OWN_RHYTHM_MIN_BEATS = 150  # pools this long (~2 min): shorter ones can be one slow ventricular run
OWN_RHYTHM_MIN_RR_S = 0.6  # slower than 100 bpm: ventricular tachycardia is 100 bpm or more
OWN_RHYTHM_RR_TOLERANCE = 0.1  # not premature: RR before at least 0.9 x the local RR
# With a pacemaker declared the dominant rhythm is the paced one in requests of any length: a
# demand pacemaker paces whenever the heart is slower than its lower rate, so a slow wide on-time
# rhythm is its own, not a ventricular escape. Fewer beats than this make no rhythm.
MIN_RHYTHM_BEATS = 5
# A beat in a stretch the quality flag judges noisy is called V only at this many times the
# odds of V the card's threshold asks (0.24 -> 0.39): noise there makes V-like shapes, so a
# V-like shape is less likely a PVC. A rule of the service, chosen on DS1 (docs/ROBUSTNESS.md).
NOISY_V_ODDS = 2.0
# A readable beat timed and shaped as a Holter reader recognises a PVC (ectopic_timing_mask) is
# called V from this calibrated (pooled) V probability, under the card's threshold: the network
# misses PVCs of shapes it never learned (a lead MIT-BIH does not have), not their timing. A rule
# of the service, chosen on DS1 out of fold (docs/ROBUSTNESS.md, "A PVC's timing").
ECTOPIC_MIN_P = 0.1
ECTOPIC_PREMATURE = 0.9  # RR before under this x the local mean RR: at least 10 % early ...
ECTOPIC_PAUSE = 1.1  # ... RR after over this x it: a pause follows ...
ECTOPIC_WIDTH_RATIO = 1.1  # ... its QRS at least 10 % wider than its group's median QRS ...
ECTOPIC_MAX_CORR = 0.8  # ... and unlike its group's median beat (correlation under this) ...
# ... in a regular rhythm: the RR before the beat preceding it and the RR after the beat following
# it both within this share of the local RR. In atrial fibrillation early beats followed by a long
# RR, and aberrant beats, come at random (DS1's 203; DS2's 222)
ECTOPIC_REGULAR = 0.2
# A readable beat of a shape whose beats mostly come early with a pause after them in a regular
# rhythm (pvc_timed_mask, as isolated PVCs do) is called V from this calibrated (pooled) V
# probability: the network judges a shape it never learned alike at every beat, and the shape's
# timing is what a Holter reader reads. A rule of the service, chosen on DS1 out of fold
# (docs/ROBUSTNESS.md, "A shape's timing").
TIMED_SHAPE_MIN_P = 0.05
TIMED_SHAPE_MIN_BEATS = 5  # alike beats in its pool, itself included: a recurring shape ...
TIMED_SHAPE_SHARE = 0.5  # ... at least this share of which is so timed
# A V call that no pause follows in a regular rhythm is called N: the rhythm's beats on either side
# of it lie no further apart than this x the rhythm's RR, so the rhythm goes on as if it were not
# there. A PVC resets the rhythm (a pause follows it) unless it is interpolated, which is rare; an
# artefact the detector took for a beat does not. A rule of the service, chosen on DS1 out of fold
# (docs/ROBUSTNESS.md, "V calls the rhythm does not need").
NO_PAUSE_SPAN = 1.1
# The rhythm's beats: not called V and alike to their group's median beat (template correlation at
# least this). A PVC's T wave the detector took for a beat in the pause after it is not one (MIT-BIH
# 119 under noise), nor are most artefacts the network calls N.
RHYTHM_MIN_CORR = 0.3
RHYTHM_HALF_INTERVALS = 10  # the rhythm's RR: the median of the intervals between consecutive
# detections that are both the rhythm's beats, of as many intervals each side of the call ...
RHYTHM_MIN_INTERVALS = 5  # ... at least this many of them ...
RHYTHM_REGULAR = 0.1  # ... three quarters of them within this share of their median (not AF)
SIGNAL_GAP_S = 1e6  # between two signals of one request (a lead off): no interval spans it
# A V call on time in that regular rhythm whose repolarisation is the rhythm's own is called N too: a
# PVC changes how the ventricles repolarise (its ST segment and T wave), a normal beat an artefact
# fell on keeps them, and no pause follows it either. A rule of the service, chosen on DS1 out of
# fold (docs/ROBUSTNESS.md, "V calls the rhythm does not need").
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
# A V call in that regular rhythm whose window holds the rhythm's own QRS, undetected, where the rhythm's
# next beat was due is called N too: an artefact the detector took instead of that beat (of two
# detections closer than its refractory period it keeps one), and the beat is still there. After a PVC
# the ventricles are refractory when the rhythm's next beat is due: no QRS of the rhythm's there. A
# rule of the service, chosen on DS1 out of fold (docs/ROBUSTNESS.md, "V calls the rhythm does not need").
HIDDEN_BEAT_TOLERANCE = 0.1  # sought within this share of the rhythm's RR of where its next beat was due ...
HIDDEN_BEAT_MIN_CORR = 0.95  # ... a stretch this alike to the rhythm's median QRS (the core the pooling reads) ...
HIDDEN_BEAT_SIZE = (0.5, 2.0)  # ... of an RMS within these multiples of the median's ...
HIDDEN_BEAT_MIN_OFFSET_S = 0.05  # ... at least this far from the call's own R peak (not the call itself) ...
HIDDEN_BEAT_MIN_GAP_S = 0.1  # ... and no other detection this close to it: a beat the detector missed


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def calibrated_logit(p_raw, calibration):
    """Platt scaling of raw probabilities (n,), in logits: a * logit(p) + b."""
    return calibration.get("a", 1.0) * logit(p_raw) + calibration.get("b", 0.0)


def calibrate(p_raw, calibration):
    """Platt scaling of raw probabilities (n,): sigmoid(a * logit(p) + b)."""
    return expit(calibrated_logit(p_raw, calibration))


def pooling_logit(p_raw, calibration):
    """The calibrated logits (n,) the pooling averages: as :func:`logit` of the calibrated
    probability, bounded where it bounds probabilities (1e-7 from 0 and 1)."""
    return np.clip(calibrated_logit(p_raw, calibration), -_MAX_LOGIT, _MAX_LOGIT)


def fit_platt(p_raw, y, iterations=100):
    """Platt parameters ``{"a", "b"}`` minimising log loss of (p_raw, y) (Newton's method).

    Targets are Platt's smoothed labels ((n+ + 1)/(n+ + 2) and 1/(n- + 2)) rather than
    0/1, so well-separated validation beats give a finite fit instead of a step.
    """
    x = logit(p_raw)
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = expit(a * x + b)
        g = np.array([np.sum((p - t) * x), np.sum(p - t)])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        step = np.linalg.solve(h + 1e-6 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return {"method": "platt", "a": float(a), "b": float(b)}


def ruleguard_mask(features, rule):
    """Beats (n,) a RuleGuard would turn from V back to N.

    A ventricular ectopic beat is almost always premature or followed by a pause,
    and wide: a beat on time on both sides (RR ratios within ``rr_tolerance`` of 1)
    with a narrow QRS (below ``max_qrs_width_s``) is very likely not V.
    """
    f = np.asarray(features)
    tol = rule["rr_tolerance"]
    on_time = (np.abs(f[:, _RR_PREV] - 1) < tol) & (np.abs(f[:, _RR_NEXT] - 1) < tol)
    return on_time & (f[:, _QRS_S] < rule["max_qrs_width_s"])


def in_cascade_band(p_first, cascade):
    """Beats (n,) whose first-member probability ``p_first`` (n,) lies strictly inside the
    card's ``decision.cascade`` band (``low``, ``high``): those the other members also run on."""
    return (p_first > cascade["low"]) & (p_first < cascade["high"])


def qrs_shapes(windows, core_samples):
    """Each beat's QRS as a unit vector: channel 0 of ``windows`` (n, 360, 2) over samples
    ``core_samples`` (lo, hi), centred and scaled to norm 1, so that the dot product of two
    rows is their Pearson correlation. Returns (n, hi - lo) float64."""
    lo, hi = core_samples
    core = np.asarray(windows)[:, lo:hi, 0].astype(np.float64)
    core -= (np.add.reduce(core, axis=1) / (hi - lo))[:, None]
    core /= (np.sqrt(np.einsum("ij,ij->i", core, core)) + 1e-12)[:, None]
    return core


def pool_by_morphology(logits, windows, groups, pooling, timed=None):
    """Each beat's V logit replaced by the mean over the beats of its pool shaped like it.

    Beats of one shape in one request are one kind of beat: the network, judging each
    alone, calls some of a patient's PVCs N and some of its noisy normal beats V. Two
    beats are alike when their QRS complexes (channel 0 of the windows, samples
    ``core_samples`` of the 360 around the R peak: ±100 ms) correlate at ``min_corr``
    or more; each beat takes ``own_weight`` x its own logit plus the rest x the mean
    logit of the beats alike to it in its pool (itself included).

    ``logits``: (n,) calibrated V logits; ``windows``: (n, 360, 2) the network's beat
    input; ``groups``: (n,) pool labels, each pool one run of consecutive beats
    (:func:`pool_groups`); ``timed``: (n,) bool, beats timed as a PVC (:func:`pvc_timed_mask`), or
    None. Returns ``(pooled, alike, alike_timed)``: the pooled logits (n,) float64, how many beats
    of its pool each beat is alike to, itself included (n,) int64, and how many of those are
    ``timed`` (n,) int64 (zeros without ``timed``).
    """
    logits = np.asarray(logits, dtype=np.float64)
    n = len(logits)
    groups = np.asarray(groups)
    if len(groups) != n or len(windows) != n:
        raise ValueError(f"{n} logits, {len(windows)} windows and {len(groups)} group labels")
    change = np.flatnonzero(groups[1:] != groups[:-1]) + 1  # where a run of equal labels starts
    if len(change):
        firsts = groups[np.concatenate(([0], change))]
        if len(np.unique(firsts)) != len(firsts):
            raise ValueError("each group must be one run of consecutive beats")
    core = qrs_shapes(windows, pooling["core_samples"])
    own = float(pooling.get("own_weight", 0.0))
    bounds = [0, *change.tolist(), n]  # a request is one run, often
    x1 = np.empty((n, 3))  # one product gives the alike beats' sums, counts and timed counts
    x1[:, 0] = logits
    x1[:, 1] = 1.0
    x1[:, 2] = 0.0 if timed is None else np.asarray(timed, dtype=np.float64)
    out = np.empty(n)
    counts = np.empty((n, 2))
    for a, b in zip(bounds[:-1], bounds[1:]):
        c = core[a:b]
        for i in range(0, b - a, BLOCK_ROWS):
            j = min(i + BLOCK_ROWS, b - a)
            alike = c[i:j] @ c.T
            np.greater_equal(alike, pooling["min_corr"], out=alike, casting="unsafe")  # 1.0 / 0.0 in place
            alike.flat[i::b - a + 1] = 1.0  # a flat QRS correlates with nothing, not even itself
            sums = alike @ x1[a:b]
            np.divide(sums[:, 0], sums[:, 1], out=out[a + i:a + j])
            counts[a + i:a + j] = sums[:, 1:]
    counts = np.rint(counts).astype(np.int64)
    return (out if own == 0.0 else own * logits + (1.0 - own) * out), counts[:, 0], counts[:, 1]


def dominant_rhythm_mask(alike, pools, features):
    """Beats (n,) of their pool's dominant on-time shape, slower than a tachycardia.

    A beat is of it when it is alike to more than ``OWN_RHYTHM_SHARE`` of its pool, its RR before
    is not premature and its group's RR is at least ``OWN_RHYTHM_MIN_RR_S``: in a long
    recording, the patient's own rhythm (:func:`own_rhythm_mask`); in a short one, that or a
    slow ventricular rhythm. ``alike``: (n,) from :func:`pool_by_morphology`; ``pools``: (n,)
    its pool labels; ``features``: (n, k) the beats' features (``ecg.features.RR_FEATURE_NAMES``).
    """
    f = np.asarray(features)
    not_premature = (f[:, _HAS_PREV] == 0) | (f[:, _RR_PREV] >= 1 - OWN_RHYTHM_RR_TOLERANCE)
    return (np.asarray(alike) > OWN_RHYTHM_SHARE * pool_sizes(pools)) & not_premature & (
        f[:, _LOCAL_RR_S] >= OWN_RHYTHM_MIN_RR_S)


def pool_sizes(pools):
    """The size (n,) of each beat's pool, from the pool labels ``pools`` (n,)."""
    _, inverse, sizes = np.unique(np.asarray(pools), return_inverse=True, return_counts=True)
    return sizes[inverse.reshape(-1)]


def own_rhythm_mask(alike, pools, features, paced=False):
    """Beats (n,) of the patient's own rhythm, which are never called V.

    In a long recording the QRS shape most beats share, on time and slower than a
    tachycardia, is the rhythm the patient's heart conducts, whatever it looks like:
    a bundle branch block's wide complexes, or a lead where normal beats look like PVCs
    (V1 under left bundle branch block is a wide QS). Holter readers judge ectopy against
    it. A beat is of it when it is of its pool's dominant rhythm (:func:`dominant_rhythm_mask`)
    and its pool holds at least ``OWN_RHYTHM_MIN_BEATS`` beats. A PVC is premature;
    bigeminy's are at most half the beats; a 10-s strip of slow ventricular rhythm is too
    short to tell from a conducted rhythm, so short pools keep the network's call, unless
    ``paced``: the patient has a pacemaker, whose paced beats are that dominant wide rhythm,
    and pools of ``MIN_RHYTHM_BEATS`` are enough.

    ``alike``, ``pools``, ``features``: as :func:`dominant_rhythm_mask` reads them.
    """
    min_beats = MIN_RHYTHM_BEATS if paced else OWN_RHYTHM_MIN_BEATS
    if len(alike) < min_beats:  # no pool is long enough (without a pacemaker: every 10-s request)
        return np.zeros(len(alike), bool)
    return (pool_sizes(pools) >= min_beats) & dominant_rhythm_mask(alike, pools, features)


def pool_blocks(n, size):
    """Pool labels (n,) for n consecutive beats: blocks of ``size`` beats from the first, the last
    one holding the rest, as many as ``ecg.features.beat_groups`` makes (one under 1.5 x ``size``,
    so a 30-min record is one pool, as in training).

    Counted from the signal's start, so that a pool, and the calls the pooling makes in it, do not
    depend on how many beats come after it: the first hours of a recording read alone and the same
    hours within the whole day get the same pools, all but the last (evenly spread pools would all
    move), and detections added late in a day (a lead off carrying noise) move no earlier pool.
    """
    n_pools = max(1, int(round(n / size)))
    return np.minimum(np.arange(n) // size, n_pools - 1)


def pool_groups(pooling, n, groups=None, signals=None):
    """The pools (n,) of ``pooling``: with ``pool_size_beats``, :func:`pool_blocks` of that many beats
    within each signal (``signals`` (n,), the signal each beat was found in; None: one
    signal, a request); without it, the beats' ``groups`` (n,)."""
    size = pooling.get("pool_size_beats")
    if size is None:
        if groups is None:
            raise ValueError("this decision pools beats within their groups: pass the groups")
        return groups
    if signals is None:  # one request: one signal
        return pool_blocks(n, size)
    return groups_within(signals, size, layout=pool_blocks)


def noisy_threshold(threshold):
    """The V probability a beat in a noisy stretch needs: ``NOISY_V_ODDS`` x the odds of ``threshold``."""
    odds = NOISY_V_ODDS * threshold / (1.0 - threshold)
    return odds / (1.0 + odds)


def pvc_timed_mask(features):
    """Beats (n,) timed as a PVC in a regular rhythm: premature (RR before under
    ``ECTOPIC_PREMATURE`` x the local RR), followed by a pause (RR after over ``ECTOPIC_PAUSE`` x
    it), the RR before the previous beat and the RR after the next both within
    ``ECTOPIC_REGULAR`` of the local RR. Neither neighbour may be missing: a beat at a request's
    edge has no timing. ``features`` (n, k) as ``ecg.features`` names them."""
    f = np.asarray(features)
    has_both = (f[:, _HAS_PREV] == 1) & (f[:, _HAS_NEXT] == 1)
    regular = (np.abs(f[:, _PREV_RR_PREV] - 1) < ECTOPIC_REGULAR) & (np.abs(f[:, _NEXT_RR_NEXT] - 1) < ECTOPIC_REGULAR)
    return has_both & regular & (f[:, _RR_PREV] < ECTOPIC_PREMATURE) & (f[:, _RR_NEXT] > ECTOPIC_PAUSE)


def ectopic_timing_mask(features):
    """Beats (n,) timed as a PVC in a regular rhythm (:func:`pvc_timed_mask`), and shaped as one:
    wider than and unlike the beats of their group (``ECTOPIC_*``; ``features`` (n, k) as
    ``ecg.features`` names them)."""
    f = np.asarray(features)
    shape = (f[:, _QRS_WIDTH_RATIO] >= ECTOPIC_WIDTH_RATIO) & (f[:, _TEMPLATE_CORR] < ECTOPIC_MAX_CORR)
    return pvc_timed_mask(f) & shape


def timed_shape_mask(alike, alike_timed):
    """Beats (n,) of a recurring shape whose beats mostly come timed as a PVC: alike to at least
    ``TIMED_SHAPE_MIN_BEATS`` beats of their pool, itself included, of which at least
    ``TIMED_SHAPE_SHARE`` are :func:`pvc_timed_mask`'s (``alike``, ``alike_timed``: (n,) from
    :func:`pool_by_morphology`)."""
    alike = np.asarray(alike)
    return (alike >= TIMED_SHAPE_MIN_BEATS) & (np.asarray(alike_timed) >= TIMED_SHAPE_SHARE * alike)


def beat_times(features):
    """Each beat's time in seconds (n,), from the RR before it (``features`` (n, k) as
    ``ecg.features`` names them); a beat with no previous one starts a signal ``SIGNAL_GAP_S``
    after the last."""
    f = np.asarray(features)
    return np.cumsum(np.where(f[:, _HAS_PREV] == 1, f[:, _RR_PREV_S].astype(np.float64), SIGNAL_GAP_S))


def no_pause_mask(is_v, features, windows=None):
    """V calls (n,) that no pause follows in a regular rhythm: the rhythm's beats before and after one
    lie under ``NO_PAUSE_SPAN`` x the rhythm's RR apart (``RHYTHM_*``), or, given the beats'
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
    no_pause[calls] = inside & (span < NO_PAUSE_SPAN * rr)
    if windows is not None:
        before_s, after_s = t[calls] - t[rhythm_beats[after - 1]], t[rhythm_beats[after]] - t[calls]
        on_time = inside & (np.abs(before_s / rr - 1) < ON_TIME) & (np.abs(after_s / rr - 1) < ON_TIME)
        differences, spreads = repolarisation_differences(windows, calls[on_time], rhythm_beats, after[on_time])
        own = (differences < REPOLARISATION_MAX_DIFF) & (differences < REPOLARISATION_MAX_SPREADS * spreads)
        no_pause[calls[on_time]] |= own
        offsets = hidden_beat_offsets(windows, calls[inside], rr[inside] - before_s[inside], rr[inside],
                                      rhythm_beats, after[inside])
        no_pause[calls[inside]] |= undetected(t, calls[inside], offsets)
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
        own = rms_about_mean(near[enough] - block[enough, None, :])  # NaN beyond the rhythm's ends
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
    differences = rms_about_mean(stretch[calls] - medians)
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


def rms_about_mean(d):
    """RMS of ``d`` (..., m) about its mean along the last axis: (...)."""
    return np.sqrt(np.mean((d - d.mean(axis=-1, keepdims=True)) ** 2, axis=-1))


class Calls(NamedTuple):
    """What :func:`classify` decided for n beats, each field (n,)."""

    is_v: np.ndarray  # bool: called V
    p_v: np.ndarray  # float: the calibrated (with pooling, pooled) V probability the threshold judged
    flipped: np.ndarray  # bool: turned from V to N by the RuleGuard
    own_rhythm: np.ndarray  # bool: would be V (over the odds their quality needs), called N as the own rhythm
    alike: np.ndarray | None  # int: beats of its pool alike to it, itself included (None: no pooling)
    pools: np.ndarray | None  # the pool labels (None: no pooling)
    by_timing: np.ndarray  # bool: called V under the card's threshold for its (or its shape's) timing
    no_pause: np.ndarray  # bool: would be V, called N: no pause follows it in a regular rhythm


def classify(p_raw, features, decision, apply_ruleguard=True, windows=None, groups=None, signals=None,
             quality=None, paced=False):
    """Labels and calibrated V probabilities of n beats.

    ``p_raw``: the network's V probability (n,); ``features``: the beats' RR
    features (n, k). A decision with ``pooling`` also needs the beats' ``windows``
    (n, 360, 2), and their ``groups`` (n,) or ``signals`` (n,) as :func:`pool_groups` reads
    them (:func:`pool_by_morphology`); ``p_v`` is then the pooled probability, the one the
    threshold judges, and beats of the patient's own rhythm are N (:func:`own_rhythm_mask`).
    ``quality``: the beats' signal quality (n,) (``ecg.quality``): an unreadable beat is never
    called V, whatever its probability, and a noisy one only over :func:`noisy_threshold`; a
    good one timed and shaped as a PVC (:func:`ectopic_timing_mask`) from ``ECTOPIC_MIN_P``, and
    one of a shape whose beats mostly are timed as one (:func:`timed_shape_mask`) from
    ``TIMED_SHAPE_MIN_P``; and a V call that no pause follows in a regular rhythm is N, as are one
    on time there with the rhythm's own repolarisation and one beside the rhythm's undetected QRS
    (:func:`no_pause_mask`).
    ``paced``: the patient has a pacemaker (:func:`own_rhythm_mask`). Returns the beats' :class:`Calls`.
    """
    pooling = decision.get("pooling")
    timed_shape = np.zeros(len(p_raw), bool)
    if pooling:
        if windows is None:
            raise ValueError("this decision pools beats by morphology: pass their windows")
        pools = pool_groups(pooling, len(p_raw), groups, signals)
        pooled, alike, alike_timed = pool_by_morphology(pooling_logit(p_raw, decision["calibration"]), windows,
                                                        pools, pooling, timed=pvc_timed_mask(features))
        p_v = expit(pooled)
        over = p_v >= decision["threshold"]
        own = own_rhythm_mask(alike, pools, features, paced)
        own_rhythm = over & own
        timed_shape = timed_shape_mask(alike, alike_timed) & ~own
    else:
        p_v = calibrate(p_raw, decision["calibration"])
        over = p_v >= decision["threshold"]
        own_rhythm = np.zeros_like(over)
        alike = pools = None
    if quality is not None:
        # noise makes QRS-like shapes the network was never shown: in an unreadable stretch a
        # V call is more often an artefact than a PVC, in a noisy one it needs surer odds
        quality = np.asarray(quality)
        over &= (quality != UNREADABLE) & ((quality != NOISY) | (p_v >= noisy_threshold(decision["threshold"])))
        own_rhythm &= over  # counted only where it changed a call: a beat under the odds its quality needs was N
    is_v = over & ~own_rhythm
    guarded = np.zeros_like(is_v)
    rule = decision.get("ruleguard") or {}
    if apply_ruleguard and rule.get("enabled"):
        guarded = ruleguard_mask(features, rule)
    flipped = is_v & guarded
    is_v &= ~flipped
    by_timing = np.zeros_like(is_v)
    no_pause = np.zeros_like(is_v)
    if quality is not None:
        # the timing says PVC where the network, shown a shape it never learned, is unsure: a beat
        # premature, a pause after, wide and unlike its neighbours, or of a shape whose beats mostly
        # are (never one RuleGuard would turn N)
        timed = ((p_v >= ECTOPIC_MIN_P) & ectopic_timing_mask(features)) | ((p_v >= TIMED_SHAPE_MIN_P) & timed_shape)
        by_timing = ~is_v & ~guarded & (quality == GOOD) & timed
        is_v = is_v | by_timing
        # an artefact the detector took for a beat leaves the rhythm as it was; a PVC resets it
        no_pause = no_pause_mask(is_v, features, windows)
        is_v &= ~no_pause
        by_timing &= ~no_pause
    return Calls(is_v, p_v, flipped, own_rhythm, alike, pools, by_timing, no_pause)

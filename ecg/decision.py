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

from .blocked_p import small_without_t_wave_mask
from .dsp import expit
from .features import RR_FEATURE_NAMES, groups_within
from .no_pause import no_pause_mask
from .quality import GOOD, NOISY, UNREADABLE

_RR_PREV = RR_FEATURE_NAMES.index("rr_prev_ratio")
_RR_NEXT = RR_FEATURE_NAMES.index("rr_next_ratio")
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


class Calls(NamedTuple):
    """What :func:`classify` decided for n beats, each field (n,)."""

    is_v: np.ndarray  # bool: called V
    p_v: np.ndarray  # float: the calibrated (with pooling, pooled) V probability the threshold judged
    flipped: np.ndarray  # bool: turned from V to N by the RuleGuard
    own_rhythm: np.ndarray  # bool: would be V (over the odds their quality needs), called N as the own rhythm
    alike: np.ndarray | None  # int: beats of its pool alike to it, itself included (None: no pooling)
    pools: np.ndarray | None  # the pool labels (None: no pooling)
    by_timing: np.ndarray  # bool: called V under the card's threshold for its (or its shape's) timing
    no_pause: np.ndarray  # bool: would be V, called N by the no-pause rule (ecg.no_pause): the rhythm does not need it
    no_t_wave: np.ndarray  # bool: would be V, called N as small beside its neighbours with no T wave (ecg.blocked_p)


def classify(p_raw, features, decision, apply_ruleguard=True, windows=None, groups=None, signals=None,
             quality=None, paced=False, qrs_sizes=None):
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
    ``TIMED_SHAPE_MIN_P``; and in a regular rhythm a V call is N when no pause follows it (over
    50 bpm), when it comes on time with the rhythm's own repolarisation, or when it lies beside the
    rhythm's undetected QRS (:func:`ecg.no_pause.no_pause_mask`).
    ``qrs_sizes``: ``(size, neighbour_size)`` (n,) each, the beats' QRS sizes and their neighbours'
    (``ecg.blocked_p.neighbour_qrs_size``): with the windows, a V call small beside its neighbours
    and with no T wave after it is N (:func:`ecg.blocked_p.small_without_t_wave_mask`: a blocked P wave).
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
    no_t_wave = np.zeros_like(is_v)
    if qrs_sizes is not None and windows is not None:
        no_t_wave = small_without_t_wave_mask(is_v, windows, *qrs_sizes)
        is_v &= ~no_t_wave
        by_timing &= ~no_t_wave
    return Calls(is_v, p_v, flipped, own_rhythm, alike, pools, by_timing, no_pause, no_t_wave)

"""From the network's V probability to a beat label, with the model card's parameters.

``decision`` is the model card's ``decision`` object::

    {"calibration": {"method": "platt", "a": 1.0, "b": 0.0},
     "threshold": 0.5,
     "ruleguard": {"enabled": true, "rr_tolerance": 0.1, "max_qrs_width_s": 0.1},
     "pooling": {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216]}}

``pooling`` (optional): one label per morphology within a group of beats, see
:func:`pool_by_morphology`. Training fits these on the DS1 validation split
(``python -m train.pooling`` the pooling); the service only applies them.
"""

import numpy as np

from .dsp import expit
from .features import RR_FEATURE_NAMES

_RR_PREV = RR_FEATURE_NAMES.index("rr_prev_ratio")
_RR_NEXT = RR_FEATURE_NAMES.index("rr_next_ratio")
_QRS_S = RR_FEATURE_NAMES.index("qrs_width_s")
_EPS = 1e-7
_MAX_LOGIT = float(np.log(1 - _EPS) - np.log(_EPS))  # logit's bound, 16.1
# what ruleguard_mask reads: a card with any other RuleGuard setting was tuned by code
# that knows a test this one does not apply, and would be served other labels than tuned
RULEGUARD_KEYS = frozenset({"enabled", "rr_tolerance", "max_qrs_width_s"})
# likewise for the pooling ("chosen_on" records the study that chose it)
POOLING_KEYS = frozenset({"min_corr", "own_weight", "core_samples", "chosen_on"})


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


def pool_by_morphology(logits, windows, groups, pooling):
    """Each beat's V logit replaced by the mean over the beats of its group shaped like it.

    Beats of one shape in one strip are one kind of beat: the network, judging each
    alone, calls some of a patient's PVCs N and some of its noisy normal beats V. Two
    beats are alike when their QRS complexes (channel 0 of the windows, samples
    ``core_samples`` of the 360 around the R peak: ±100 ms) correlate at ``min_corr``
    or more; each beat takes ``own_weight`` x its own logit plus the rest x the mean
    logit of the beats alike to it in its group (itself included).

    ``logits``: (n,) calibrated V logits; ``windows``: (n, 360, 2) the network's beat
    input; ``groups``: (n,) group labels, each group one run of consecutive beats
    (:func:`ecg.features.beat_groups` for one signal: a 10-s strip is one group).
    Returns (n,) float64.
    """
    logits = np.asarray(logits, dtype=np.float64)
    n = len(logits)
    groups = np.asarray(groups)
    if len(groups) != n or len(windows) != n:
        raise ValueError(f"{n} logits, {len(windows)} windows and {len(groups)} group labels")
    change = np.flatnonzero(np.diff(groups)) + 1  # where a run of equal labels starts
    if len(change):
        firsts = groups[np.r_[0, change]]
        if len(np.unique(firsts)) != len(firsts):
            raise ValueError("each group must be one run of consecutive beats")
    core = qrs_shapes(windows, pooling["core_samples"])
    own = float(pooling.get("own_weight", 0.0))
    bounds = np.r_[0, change, n]  # a strip is one run
    out = np.empty(n)
    for a, b in zip(bounds[:-1], bounds[1:]):
        c = core[a:b]
        alike = ((c @ c.T) >= pooling["min_corr"]).astype(np.float64)
        alike.flat[::b - a + 1] = 1.0  # a flat QRS correlates with nothing, not even itself
        x = logits[a:b]
        mean = (alike @ x) / np.add.reduce(alike, axis=1)
        out[a:b] = mean if own == 0.0 else own * x + (1.0 - own) * mean
    return out


def classify(p_raw, features, decision, apply_ruleguard=True, windows=None, groups=None):
    """Labels and calibrated V probabilities of n beats.

    ``p_raw``: the network's V probability (n,); ``features``: the beats' RR
    features (n, k). A decision with ``pooling`` also needs the beats' ``windows``
    (n, 360, 2) and ``groups`` (n,) (:func:`pool_by_morphology`); ``p_v`` is then the
    pooled probability, the one the threshold judges. Returns ``(is_v, p_v, flipped)``:
    bool (n,), float (n,), and bool (n,) marking beats the RuleGuard turned from V to N.
    """
    pooling = decision.get("pooling")
    if pooling:
        if windows is None or groups is None:
            raise ValueError("this decision pools beats by morphology: pass their windows and groups")
        p_v = expit(pool_by_morphology(pooling_logit(p_raw, decision["calibration"]), windows, groups, pooling))
    else:
        p_v = calibrate(p_raw, decision["calibration"])
    is_v = p_v >= decision["threshold"]
    flipped = np.zeros_like(is_v)
    rule = decision.get("ruleguard") or {}
    if apply_ruleguard and rule.get("enabled"):
        flipped = is_v & ruleguard_mask(features, rule)
        is_v = is_v & ~flipped
    return is_v, p_v, flipped

"""Beat-by-beat comparison after ANSI/AAMI EC57: matching and performance figures.

One matching function scores the QRS detector, the classifier end to end and the
running service alike. Positions are integer sample indices at one rate ``fs``.
"""

import numpy as np

MATCH_WINDOW_S = 0.150  # EC57: a detection within 150 ms of a reference beat matches it


def in_ranges(samples, ranges):
    """Boolean mask (k,): which ``samples`` fall in any [start, end] of ``ranges`` (m, 2).

    The ranges may overlap or nest (ventricular flutter and an unreadable stretch, say): a
    sample is in one when the furthest end among the ranges starting at or before it reaches it.
    """
    samples = np.asarray(samples, dtype=np.int64)
    ranges = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    if not len(ranges):
        return np.zeros(len(samples), dtype=bool)
    order = np.argsort(ranges[:, 0], kind="stable")
    starts, reach = ranges[order, 0], np.maximum.accumulate(ranges[order, 1])
    i = np.searchsorted(starts, samples, side="right") - 1
    return (i >= 0) & (samples <= reach[np.clip(i, 0, None)])


def match_beats(ref, test, tolerance):
    """One-to-one matching of detections ``test`` to reference beats ``ref``.

    ``ref``, ``test``: sample indices, shape (n,) and (m,), any order.
    ``tolerance``: largest |ref - test| in samples that still matches.
    Pairs are taken closest first, so every beat is matched at most once.
    Returns ``(ref_idx, test_idx)``: indices into ``ref`` and ``test`` of the pairs,
    sorted by reference position.
    """
    ref = np.asarray(ref, dtype=np.int64)
    test = np.asarray(test, dtype=np.int64)
    if not len(ref) or not len(test):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r_order, t_order = np.argsort(ref, kind="stable"), np.argsort(test, kind="stable")
    r, t = ref[r_order], test[t_order]
    lo = np.searchsorted(r, t - tolerance, side="left")
    hi = np.searchsorted(r, t + tolerance, side="right")
    width = int((hi - lo).max())
    if width == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # every candidate pair (reference k, test j) within the tolerance
    k = lo[:, None] + np.arange(width)[None, :]
    ok = k < hi[:, None]
    tj = np.broadcast_to(np.arange(len(t))[:, None], k.shape)[ok]
    rk = k[ok]
    dist = np.abs(r[rk] - t[tj])
    order = np.lexsort((rk, dist))  # closest first, ties to the earlier reference
    used_r = np.zeros(len(r), bool)
    used_t = np.zeros(len(t), bool)
    pr, pt = [], []
    for a, b in zip(rk[order].tolist(), tj[order].tolist()):
        if not used_r[a] and not used_t[b]:
            used_r[a] = used_t[b] = True
            pr.append(a)
            pt.append(b)
    pr, pt = np.array(pr, np.int64), np.array(pt, np.int64)
    s = np.argsort(pr)
    return r_order[pr[s]], t_order[pt[s]]


def _ratio(a, b):
    return float(a) / float(b) if b else float("nan")


def detection_stats(ref, test, fs, excluded=None, window_s=MATCH_WINDOW_S):
    """QRS detection figures for one record.

    ``ref``, ``test``: R-peak samples; ``excluded``: (m, 2) sample ranges left out
    of the comparison (EC57 leaves out ventricular flutter). Returns a dict with
    TP, FN, FP, Se and +P (fractions), and the signed position errors of the
    matched beats in ms (``errors_ms``, test minus reference).
    """
    ref = np.asarray(ref, dtype=np.int64)
    test = np.asarray(test, dtype=np.int64)
    if excluded is not None and len(excluded):
        ref = ref[~in_ranges(ref, excluded)]
        test = test[~in_ranges(test, excluded)]
    ri, ti = match_beats(ref, test, int(round(window_s * fs)))
    tp = len(ri)
    fn, fp = len(ref) - tp, len(test) - tp
    return {
        "TP": tp,
        "FN": fn,
        "FP": fp,
        "Se": _ratio(tp, tp + fn),
        "PPV": _ratio(tp, tp + fp),
        "errors_ms": (test[ti] - ref[ri]) * 1000.0 / fs,
    }


def binary_metrics(y_true, y_pred, positive="V"):
    """Se, +P, F1, specificity, FPR and accuracy of ``positive`` vs the rest.

    ``y_true``, ``y_pred``: class labels, shape (n,). Every non-positive reference
    beat called positive is a false positive (stricter than EC57's VEB +P, which
    forgives fusion beats called V).
    """
    t = np.asarray(y_true) == positive
    p = np.asarray(y_pred) == positive
    return count_metrics(int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(t & ~p)), int(np.sum(~t & ~p)))


def f1_from_counts(tp, fp, fn):
    """F1 of the positive class, 2 TP / (2 TP + FP + FN), from confusion counts.

    ``tp``, ``fp``, ``fn``: numbers, or arrays of one shape (a threshold scan's counts).
    NaN where undefined (no positive beat in the reference nor in the test). Returns a
    float, or a float64 array of the counts' shape.
    """
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    den = 2 * tp + fp + fn
    f1 = 2 * tp / np.where(den > 0, den, np.nan)
    return float(f1) if f1.ndim == 0 else f1


def count_metrics(tp, fp, fn, tn):
    """Se, +P, F1, specificity, FPR and accuracy from confusion counts (NaN where undefined)."""
    se, ppv = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    f1 = f1_from_counts(tp, fp, fn)
    return {
        "TP": tp, "FP": fp, "FN": fn, "TN": tn,
        "Se": se, "PPV": ppv, "F1": f1,
        "Sp": _ratio(tn, tn + fp), "FPR": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
    }


def end_to_end_metrics(ref, ref_labels, test, test_labels, fs, excluded=None,
                       positive="V", window_s=MATCH_WINDOW_S):
    """Classifier figures over detected beats, EC57 style.

    ``matched``: class figures over detections matched to reference beats (EC57).
    ``strict``: the same, plus every missed reference ``positive`` beat as a false
    negative and every unmatched detection called ``positive`` as a false positive.
    Also the QRS detection figures (``qrs``).
    """
    ref = np.asarray(ref, dtype=np.int64)
    test = np.asarray(test, dtype=np.int64)
    ref_labels, test_labels = np.asarray(ref_labels), np.asarray(test_labels)
    if excluded is not None and len(excluded):
        keep_r, keep_t = ~in_ranges(ref, excluded), ~in_ranges(test, excluded)
        ref, ref_labels = ref[keep_r], ref_labels[keep_r]
        test, test_labels = test[keep_t], test_labels[keep_t]
    ri, ti = match_beats(ref, test, int(round(window_s * fs)))
    matched = binary_metrics(ref_labels[ri], test_labels[ti], positive)
    missed = np.ones(len(ref), bool)
    missed[ri] = False
    extra = np.ones(len(test), bool)
    extra[ti] = False
    strict_true = np.concatenate([ref_labels[ri], ref_labels[missed], np.full(extra.sum(), "-")])
    strict_pred = np.concatenate([test_labels[ti], np.full(missed.sum(), "-"), test_labels[extra]])
    return {
        "matched": matched,
        "strict": binary_metrics(strict_true, strict_pred, positive),
        "qrs": {"TP": len(ri), "FN": int(missed.sum()), "FP": int(extra.sum()),
                "Se": _ratio(len(ri), len(ref)), "PPV": _ratio(len(ri), len(test))},
    }

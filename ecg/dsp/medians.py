"""Medians of short arrays, with numpy's figures and without its per-call overhead."""

import numpy as np


def median_1d(v):
    """``np.nanmedian(v)`` of a 1-D float array: the same numpy scalar, NaNs ignored.

    On a strip's few dozen values most of np.median's and np.nanmedian's time goes to
    their Python code before any sorting (docs/PERFORMANCE.md), and a request takes several.
    The middle value (odd count) or the mean of the middle two, in ``v``'s dtype, as
    numpy computes them. An all-NaN ``v`` gives NaN (with numpy's warning).
    """
    s = np.sort(v)  # NaNs last
    c = len(s) - int(np.count_nonzero(np.isnan(s)))
    if c == 0:
        return np.nanmedian(v)
    return (s[(c - 1) // 2] + s[c // 2]) / 2


def median_rows(a):
    """``np.median(a, axis=1, keepdims=True)`` of a finite 2-D float array, shape (n, 1).

    The middle one or two values of each row by ``np.partition`` and their mean in
    ``a``'s dtype, as np.median computes them, with less of its overhead on a strip's
    (n, 360) windows. NaNs are not looked for: callers pass finite values.
    """
    m = a.shape[1]
    lo, hi = (m - 1) // 2, m // 2
    p = np.partition(a, (lo, hi), axis=1)
    return ((p[:, lo] + p[:, hi]) / 2)[:, None]


def nanquantile_rows(a, q):
    """``np.nanquantile(a, q, axis=1)`` of a 2-D float array, shape (n,), NaNs ignored: each
    row must hold at least one number.

    Numpy's default (linear) method, as numpy computes it: the two order statistics around
    ``q`` x (count - 1) and numpy's interpolation between them, without np.nanquantile's
    per-row Python work (docs/PERFORMANCE.md).
    """
    s = np.sort(a, axis=1)  # NaNs last
    count = np.count_nonzero(~np.isnan(s), axis=1)
    at = q * (count - 1)
    lo = np.floor(at).astype(np.int64)
    hi = np.minimum(lo + 1, count - 1)
    rows = np.arange(len(s))
    below, above, t = s[rows, lo], s[rows, hi], at - lo
    step = above - below
    return np.where(t >= 0.5, above - step * (1 - t), below + step * t)

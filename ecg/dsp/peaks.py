"""Local maxima at least a distance apart: ``scipy.signal.find_peaks(x, distance=...)``."""

from math import ceil

import numpy as np


def local_maxima(x):
    """Local maxima of ``x`` (n,), as ``scipy.signal.find_peaks(x)`` finds them.

    A sample higher than both neighbours, or the middle (the left one of the two
    middle samples for an even length) of a flat run higher than the samples on
    both sides of it. The first and last samples, and flat runs reaching them, are
    never peaks. Returns increasing int64 indices (k,).
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 3:
        return np.zeros(0, np.int64)
    d = x[1:] - x[:-1]
    if np.count_nonzero(d) == n - 1:  # no flat run (the usual case): strict maxima only
        rising = d > 0
        return np.flatnonzero(rising[:-1] > rising[1:]) + 1  # rising, then falling
    changes = np.flatnonzero(x[1:] != x[:-1]) + 1  # where a run of equal values starts
    starts = np.concatenate(([0], changes))
    ends = np.concatenate((changes - 1, [n - 1]))  # inclusive
    value = x[starts]
    inner = np.arange(1, len(starts) - 1)  # runs with a neighbouring run on both sides
    peak = (value[inner - 1] < value[inner]) & (value[inner + 1] < value[inner])
    runs = inner[peak]
    return ((starts[runs] + ends[runs]) // 2).astype(np.int64)


def select_by_distance(peaks, priority, distance):
    """Which ``peaks`` ``find_peaks(..., distance=distance)`` keeps: a boolean mask (k,).

    scipy's rule: from the highest ``priority`` down (in ``np.argsort(priority)``
    order, so ties break as scipy's do), each peak still kept removes every other
    peak closer than ``distance`` samples. ``peaks``: increasing indices (k,).

    The greedy is sequential by nature. It runs as a plain Python loop over lists,
    where only peaks still kept scan their neighbours (docs/PERFORMANCE.md has its
    cost beside scipy's). Vectorised rounds (keep every peak ranked above all
    undecided peaks within reach, drop their neighbours, repeat) give the same result
    but took 3 to 5 rounds on ECG envelopes and were slower at strip sizes.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    k = len(peaks)
    reach = ceil(distance)  # peaks closer than this exclude each other
    keep = bytearray(b"\x01") * k
    pos = peaks.tolist()
    for j in np.argsort(priority)[::-1].tolist():
        if not keep[j]:
            continue
        pj = pos[j]
        i = j - 1
        while i >= 0 and pj - pos[i] < reach:
            keep[i] = 0
            i -= 1
        i = j + 1
        while i < k and pos[i] - pj < reach:
            keep[i] = 0
            i += 1
    return np.frombuffer(keep, dtype=bool).copy()


def find_peaks(x, distance=None):
    """``scipy.signal.find_peaks(x, distance=distance)[0]``: local maxima at least ``distance`` apart.

    ``x``: (n,) float64; ``distance``: samples (>= 1) or None. Returns the increasing
    indices (k,) int64 of the maxima kept (:func:`local_maxima`,
    :func:`select_by_distance` with the peaks' heights as priority).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    peaks = local_maxima(x)
    if distance is None:
        return peaks
    if distance < 1:
        raise ValueError("distance must be >= 1")
    return peaks[select_by_distance(peaks, x[peaks], distance)]

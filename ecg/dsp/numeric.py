"""Small numeric kernels: single-threaded matrix products, the centred moving average
(``scipy.ndimage.uniform_filter1d``), the logistic sigmoid (``scipy.special.expit``) and
the gradient of a 1-D array."""

import numpy as np

# OpenBLAS (numpy's BLAS) runs a matrix product on its thread pool above
# m * n * k = 4 * 65536; on a 2-core machine shared by the service's workers those
# threads wait on busy cores, and a 30-min record's filter took several times longer
# (docs/PERFORMANCE.md). Long signals' products are cut into row chunks under that
# size, so the filter and the resampler run single-threaded whatever the environment.
SINGLE_THREAD_MNK = 4 * 65536


def matmul_single_threaded(a, b):
    """``a @ b`` for 2-D float64 arrays, in row chunks that OpenBLAS runs single-threaded."""
    rows = max(1, SINGLE_THREAD_MNK // (a.shape[1] * b.shape[1]))
    if len(a) <= rows:
        return a @ b
    out = np.empty((len(a), b.shape[1]))
    for i in range(0, len(a), rows):
        np.matmul(a[i:i + rows], b, out=out[i:i + rows])
    return out


def _moving_sum(x, width):
    """Sums of ``width`` consecutive samples of ``x`` (m,): (m - width + 1,).

    Built from sums over 1, 2, 4... samples (each doubling one vector addition) added
    along ``width``'s binary digits: O(m log width), and each output is the sum of
    its own samples only, so no rounding error accumulates along the signal as it
    does with a running sum or a cumulative-sum difference (those leave small
    non-zero values, even spurious local maxima, after a large beat in a flat region).
    """
    n = len(x) - width + 1
    total = None
    offset = 0
    part, part_width = x, 1  # part[j] = sum(x[j:j + part_width])
    w = width
    while True:
        if w & 1:
            piece = part[offset:offset + n]
            total = piece.copy() if total is None else total + piece
            offset += part_width
        w >>= 1
        if not w:
            return total
        part = part[:-part_width] + part[part_width:]
        part_width *= 2


def uniform_filter1d(x, size, mode="constant"):
    """Moving average of ``size`` samples: ``scipy.ndimage.uniform_filter1d(x, size, mode=mode)``.

    ``x``: (n,) float64. Output sample i averages ``x[i - size // 2]`` to
    ``x[i + (size - 1) // 2]`` (ndimage's centring: one more sample before than
    after when ``size`` is even). Beyond the ends ``x`` counts as 0
    (``mode="constant"``) or as its end value (``mode="nearest"``). Returns (n,).
    scipy's running sum drifts by rounding (~1e-16 of the largest values passed);
    this sums each window on its own, so they agree to that.
    """
    x = np.asarray(x, dtype=np.float64)
    size = int(size)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if len(x) == 0:
        return np.zeros(0)
    before, after = size // 2, size - 1 - size // 2
    if mode == "constant":
        padded = np.concatenate((np.zeros(before), x, np.zeros(after)))
    elif mode == "nearest":
        padded = np.concatenate((np.full(before, x[0]), x, np.full(after, x[-1])))
    else:
        raise ValueError(f"mode must be 'constant' or 'nearest', got {mode!r}")
    return _moving_sum(padded, size) / size


def expit(x):
    """The logistic sigmoid ``1 / (1 + exp(-x))`` (``scipy.special.expit``), elementwise.

    Computed from ``exp(-|x|)``, which never overflows, so very negative inputs give
    0 without a RuntimeWarning. Agrees with scipy to a few ulp. Returns float64.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def gradient_1d(x):
    """``np.gradient(x)`` of a 1-D float64 array (unit spacing): the same values for len >= 2,
    zeros for a single sample (which has no slope).

    Central differences inside, one-sided at the ends; without np.gradient's
    argument handling, which costs more than the arithmetic on a 10-s strip.
    """
    if len(x) < 2:
        return np.zeros_like(x)
    out = np.empty_like(x)
    np.subtract(x[2:], x[:-2], out=out[1:-1])
    out[1:-1] /= 2.0
    out[0] = x[1] - x[0]
    out[-1] = x[-1] - x[-2]
    return out

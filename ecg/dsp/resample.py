"""Polyphase FIR resampling: ``scipy.signal.resample_poly`` and its default filter."""

from functools import lru_cache
from math import gcd

import numpy as np

from .numeric import matmul_single_threaded


def firwin_kaiser_lowpass(numtaps, cutoff, beta=5.0):
    """Windowed-sinc low-pass FIR: ``scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))``.

    ``cutoff`` relative to the Nyquist frequency (0..1); odd ``numtaps``. Unit gain
    at DC. Returns (numtaps,) float64.
    """
    m = np.arange(numtaps, dtype=np.float64) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m)
    h = h * np.kaiser(numtaps, beta)
    return h / np.sum(h)


@lru_cache(maxsize=64)
def _resample_plan(up, down):
    """The polyphase matrices of :func:`resample_poly` for ``up`` / ``down`` (coprime).

    scipy's filter: firwin of ``2 * 10 * max(up, down) + 1`` taps, cutoff
    ``1 / max(up, down)``, Kaiser beta 5, times ``up``; output sample k is
    ``sum_i x[i] h[t_k - i * up]`` with ``t_k = (k + pre_remove) * down - pre_pad``
    (scipy's zero-padding of the filter that centres the output). Writing
    ``k = b * up + r`` and ``i = b * down + s``, the taps depend on (r, s) only:
    output row b is a fixed (span x up) matrix times ``x[b * down + s_lo: ...]``.
    The phases r are split into groups whose input spans are short, so the matrices
    stay close to the filter's ``len(h) / up`` taps per output.
    """
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = firwin_kaiser_lowpass(2 * half_len + 1, 1.0 / max_rate) * up
    pre_pad = down - half_len % down
    pre_remove = (half_len + pre_pad) // down
    t = (np.arange(up) + pre_remove) * down - pre_pad  # filter index of phase r at s = 0
    s_min = -((len(h) - 1 - t) // up)  # ceil((t - len(h) + 1) / up)
    s_max = t // up
    taps = -(-len(h) // up)
    group = max(1, min(up, int(round(taps * up / down))))
    groups = []
    for r0 in range(0, up, group):
        r1 = min(r0 + group, up)
        lo, hi = int(s_min[r0:r1].min()), int(s_max[r0:r1].max())
        s = np.arange(lo, hi + 1)
        tap = t[None, r0:r1] - s[:, None] * up  # (span, phases)
        ok = (tap >= 0) & (tap < len(h))
        groups.append((r0, r1, lo, np.where(ok, h[np.clip(tap, 0, len(h) - 1)], 0.0)))
    return groups, int(s_min.min()), int(s_max.max())


def resample_poly(x, up, down, padtype="constant"):
    """Polyphase FIR resampling by ``up / down``: ``scipy.signal.resample_poly(x, up, down, padtype=padtype)``.

    ``x``: (n,) float64, any unit. scipy's default anti-aliasing filter (Kaiser
    window, beta 5, 10 zero-crossings each side) and output alignment. ``padtype``:
    what the filter sees beyond the ends, ``"constant"`` zeros (scipy's default) or
    ``"line"`` the straight line through the first and last samples, continued.
    Returns ``ceil(n * up / down)`` samples, float64 (a copy of ``x`` when the ratio is 1).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    up, down = int(up), int(down)
    if up < 1 or down < 1:
        raise ValueError("up and down must be >= 1")
    if padtype not in ("constant", "line"):
        raise ValueError(f"padtype must be 'constant' or 'line', got {padtype!r}")
    g = gcd(up, down)
    up, down = up // g, down // g
    if up == down == 1:
        return x.copy()
    n_in = len(x)
    n_out = -(-n_in * up // down)
    if n_out == 0:
        return np.zeros(0)
    groups, s_lo, s_hi = _resample_plan(up, down)
    nb = -(-n_out // up)
    # x with its padding around it: input index i sits at i + left
    left = max(0, -s_lo)
    right = max(0, (nb - 1) * down + s_hi + 1 - n_in)
    padded = np.zeros(left + n_in + right)
    padded[left:left + n_in] = x
    if padtype == "line":
        slope = (x[-1] - x[0]) / (n_in - 1) if n_in > 1 else 0.0
        padded[:left] = x[0] + slope * np.arange(-left, 0)
        padded[left + n_in:] = x[-1] + slope * np.arange(1, right + 1)
    out = np.empty((nb, up))
    for r0, r1, lo, matrix in groups:
        span = matrix.shape[0]
        start = left + lo
        windows = np.lib.stride_tricks.as_strided(
            padded[start:], shape=(nb, span), strides=(down * padded.strides[0], padded.strides[0]),
            writeable=False)
        out[:, r0:r1] = matmul_single_threaded(np.ascontiguousarray(windows), matrix)
    return out.reshape(-1)[:n_out]

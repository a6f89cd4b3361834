"""Butterworth band-pass design as second-order sections: ``scipy.signal.butter``'s steps."""

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def butter_bandpass_sos(order, low_hz, high_hz, fs):
    """Digital Butterworth band-pass as second-order sections.

    ``scipy.signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs,
    output="sos")``, with scipy's steps in scipy's order (analog prototype, pre-warped
    band edges, low-pass to band-pass, bilinear transform, scipy's "nearest"
    pole-zero pairing, gain in the first section), so the coefficients are the same
    to the last bit or so. ``low_hz``, ``high_hz`` and ``fs`` in Hz,
    ``0 < low_hz < high_hz < fs / 2``. Returns a read-only float64 array (order, 6)
    of rows ``[b0, b1, b2, 1, a1, a2]``; cached, as a filter is designed once per
    (order, band, rate).
    """
    order = int(order)
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    wn = np.array([low_hz, high_hz], dtype=np.float64) / (fs / 2)
    if not 0 < wn[0] < wn[1] < 1:
        raise ValueError(f"need 0 < low_hz < high_hz < fs/2, got {low_hz}, {high_hz} at {fs} Hz")
    # analog Butterworth low-pass prototype: poles on the unit circle's left half
    m = np.arange(-order + 1, order, 2, dtype=np.float64)
    p = -np.exp(1j * np.pi * m / (2 * order))
    # band edges pre-warped for the bilinear transform (scipy works at fs = 2)
    warped = 2 * 2.0 * np.tan(np.pi * wn / 2.0)
    bw = warped[1] - warped[0]
    wo = np.sqrt(warped[0] * warped[1])
    # low-pass -> band-pass: each pole splits in two around +-wo; zeros at the origin
    p_lp = (p * bw / 2).astype(np.complex128)
    p_bp = np.concatenate((p_lp + np.sqrt(p_lp**2 - wo**2), p_lp - np.sqrt(p_lp**2 - wo**2)))
    z_bp = np.zeros(order, dtype=np.complex128)
    k_bp = 1.0 * bw**order
    # bilinear transform (fs = 2): zeros at the origin go to z = 1, those at
    # infinity to the Nyquist frequency z = -1
    fs2 = 4.0
    z_z = np.concatenate(((fs2 + z_bp) / (fs2 - z_bp), -np.ones(order)))
    p_z = (fs2 + p_bp) / (fs2 - p_bp)
    k_z = k_bp * np.real(np.prod(fs2 - z_bp) / np.prod(fs2 - p_bp))
    sos = _zpk2sos_nearest(z_z, p_z, k_z)
    sos.flags.writeable = False
    return sos


def _cplxreal(z):
    """scipy.signal's ``_cplxreal``: (one of each conjugate pair, reals), sorted as scipy sorts them."""
    z = np.atleast_1d(z)
    if z.size == 0:
        return z, z
    tol = 100 * np.finfo((1.0 * z).dtype).eps
    z = z[np.lexsort((abs(z.imag), z.real))]
    real_indices = abs(z.imag) <= tol * abs(z)
    zr = z[real_indices].real
    if len(zr) == len(z):
        return np.array([]), zr
    z = z[~real_indices]
    zp, zn = z[z.imag > 0], z[z.imag < 0]
    if len(zp) != len(zn):
        raise ValueError("complex value with no matching conjugate")
    # runs of (nearly) equal real parts are ordered by imaginary part
    same_real = np.diff(zp.real) <= tol * abs(zp[:-1])
    diffs = np.diff(np.concatenate(([0], same_real, [0])))
    for start, stop in zip(np.nonzero(diffs > 0)[0], np.nonzero(diffs < 0)[0] + 1):
        for chunk in (zp[start:stop], zn[start:stop]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    if any(abs(zp - zn.conj()) > tol * abs(zn)):
        raise ValueError("complex value with no matching conjugate")
    return (zp + zn.conj()) / 2, zr


def _nearest_idx(fro, to, which):
    """Index into ``fro`` of the element nearest ``to``, among reals, non-reals or any."""
    order = np.argsort(np.abs(fro - to))
    if which == "any":
        return order[0]
    mask = np.isreal(fro[order])
    if which == "complex":
        mask = ~mask
    return order[np.nonzero(mask)[0][0]]


def _section(z, p):
    """One second-order section [b0, b1, b2, 1, a1, a2] with these two zeros and two poles."""
    return np.concatenate((np.poly(z), np.poly(p)))


def _zpk2sos_nearest(z, p, k):
    """scipy.signal.zpk2sos(z, p, k) for a digital filter (``pairing="nearest"``).

    The same pairing as scipy: poles nearest the unit circle first, each with its
    nearest zeros, their sections placed last; the gain goes in the first section.
    A different pairing or order would be the same filter but round differently.
    """
    p = np.concatenate((p, np.zeros(max(len(z) - len(p), 0))))
    z = np.concatenate((z, np.zeros(max(len(p) - len(z), 0))))
    n_sections = (max(len(p), len(z)) + 1) // 2
    if len(p) % 2 == 1:
        p = np.concatenate((p, [0.0]))
        z = np.concatenate((z, [0.0]))
    z = np.concatenate(_cplxreal(z))
    p = np.concatenate(_cplxreal(p))

    def idx_worst(q):  # the pole nearest the unit circle
        return np.argmin(np.abs(1 - np.abs(q)))

    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):
        p1_idx = idx_worst(p)
        p1 = p[p1_idx]
        p = np.delete(p, p1_idx)
        if np.isreal(p1) and np.isreal(p).sum() == 0:
            # the last real pole: with the nearest real zero, plus a pole and zero at 0
            z1_idx = _nearest_idx(z, p1, "real")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _section([z1, 0], [p1, 0])
        elif (len(p) + 1 == len(z) and not np.isreal(p1)
              and np.isreal(p).sum() == 1 and np.isreal(z).sum() == 1):
            # one real pole and one real zero left: this complex pole takes complex zeros
            z1_idx = _nearest_idx(z, p1, "complex")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _section([z1, z1.conj()], [p1, p1.conj()])
        else:
            if np.isreal(p1):
                prealidx = np.flatnonzero(np.isreal(p))
                p2_idx = prealidx[idx_worst(p[prealidx])]
                p2 = p[p2_idx]
                p = np.delete(p, p2_idx)
            else:
                p2 = p1.conj()
            z1_idx = _nearest_idx(z, p1, "any")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            if not np.isreal(z1):
                sos[si] = _section([z1, z1.conj()], [p1, p2])
            else:
                z2_idx = _nearest_idx(z, p1, "real")
                z2 = z[z2_idx]
                z = np.delete(z, z2_idx)
                sos[si] = _section([z1, z2], [p1, p2])
    sos[0][:3] *= k
    return sos

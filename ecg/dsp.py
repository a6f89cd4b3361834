"""numpy-only versions of the few scipy functions the signal core uses.

The service must not import scipy: ``import scipy.signal`` alone adds about 78 MB to
each worker's RSS and scipy is about 100 MB of the serving image, for a handful of
functions. The deployed model was trained on features computed with scipy, so each
function below gives scipy's result to float64 rounding on what ecg/ feeds it (same
filter coefficients, same output alignment and length, same peak-selection rules);
tests/test_dsp.py compares them with scipy on the MIT-BIH excerpts and edge cases.

Plain functions on 1-D float64 arrays, named after the scipy functions they replace:

- :func:`butter_bandpass_sos`, :func:`sosfilt_zi`, :func:`sosfilt`, :func:`sosfiltfilt`
  (``scipy.signal``): Butterworth band-pass design and zero-phase IIR filtering;
- :func:`resample_poly` (``scipy.signal``): polyphase FIR resampling;
- :func:`uniform_filter1d` (``scipy.ndimage``): centred moving average;
- :func:`find_peaks` (``scipy.signal``, ``distance`` only): local maxima;
- :func:`expit` (``scipy.special``): the logistic sigmoid;
- :func:`median_1d`: ``np.nanmedian`` of a short 1-D array, without its ~15 us of overhead.
"""

from functools import lru_cache
from math import ceil, gcd

import numpy as np

# ---------------------------------------------------------------- Butterworth design


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


def sosfilt_zi(sos):
    """Steady-state initial conditions of ``sosfilt`` (``scipy.signal.sosfilt_zi``).

    ``sos``: (sections, 6) with ``a0 = 1``. Returns (sections, 2): the sections'
    transposed-direct-form-II states for a step input of 1, so that a signal
    starting at ``x[0]`` filtered from ``zi * x[0]`` has no start-up transient.
    Per section: solve ``zi = A zi + B`` (its state-space matrices), scaled by the
    DC gain of the sections before it.
    """
    sos = np.asarray(sos, dtype=np.float64)
    zi = np.empty((len(sos), 2))
    scale = 1.0
    for i, (b0, b1, b2, _, a1, a2) in enumerate(sos):
        i_minus_a = np.array([[1.0 + a1, -1.0], [a2, 1.0]])  # I - companion(a).T
        zi[i] = scale * np.linalg.solve(i_minus_a, np.array([b1 - a1 * b0, b2 - a2 * b0]))
        scale *= sos[i, :3].sum() / sos[i, 3:].sum()
    return zi


# ---------------------------------------------------------------- IIR filtering
#
# An IIR filter is sequential by nature, and a Python loop over samples is far too
# slow (a 30-min record is 650,000 samples). Block state-space processing gives the
# same result with a few matrix products. The cascade of sections is one linear
# system with state s (S = 2 per section):
#     s[t+1] = A s[t] + B u[t],    y[t] = C s[t] + D u[t].
# Over a block of K samples starting in state s_b, the output is a K x K
# lower-triangular Toeplitz matrix (the impulse response) times the block's input
# plus a K x S matrix times s_b, and the next block's state is F s_b (F = A^K) plus
# a S x K matrix times the block's input: the input parts of all blocks are two
# matmuls, and only the S-dimensional state is carried from block to block. That
# carry, s_{b+1} = F s_b + z_b, is solved the same way in super-blocks of K2 blocks
# (recursively, for very long signals), so no Python loop runs per sample or per
# block. All of it is exact algebra: the output differs from scipy's loop by float
# rounding, and F's powers shrink (stable poles), so errors do not grow along a
# record. The state is kept in the system's real modal basis (see _modal_basis).
#
# Block sizes: K = 32 and K2 = 16 were the best of the sizes tried. Measured against
# scipy's compiled loop (sosfiltfilt, order 2, single-threaded, shared 2-core
# machine): a 10-s strip 52 us against 56, a 30-min record 12.0-12.2 ms against
# 11.0-12.0.

_BLOCK = 32  # samples per block: the Toeplitz product costs n x K multiply-adds
_BLOCK2 = 16  # blocks per super-block: the carry costs n / K x K2 x S^2


# OpenBLAS (numpy's BLAS) runs a matrix product on its thread pool above
# m * n * k = 4 * 65536; on a 2-core machine shared by the service's workers those
# threads wait on busy cores (a 30-min record's filter took up to 10x longer in our
# runs than single-threaded). Long signals' products are cut into row chunks under
# that size, so the filter runs single-threaded whatever the environment.
_SINGLE_THREAD_MNK = 4 * 65536


def _matmul(a, b):
    """``a @ b`` for 2-D float64 arrays, in row chunks that OpenBLAS runs single-threaded."""
    rows = max(1, _SINGLE_THREAD_MNK // (a.shape[1] * b.shape[1]))
    if len(a) <= rows:
        return a @ b
    out = np.empty((len(a), b.shape[1]))
    for i in range(0, len(a), rows):
        np.matmul(a[i:i + rows], b, out=out[i:i + rows])
    return out


class _BlockFilter:
    """The matrices of block state-space filtering for one ``sos`` (see the note above)."""

    def __init__(self, sos):
        sos = np.asarray(sos, dtype=np.float64)
        sos = sos / sos[:, 3:4]
        n_state = 2 * len(sos)
        a = np.zeros((n_state, n_state))
        b = np.zeros(n_state)
        c = np.zeros(n_state)
        d = 1.0
        for i, (b0, b1, b2, _, a1, a2) in enumerate(sos):
            # section i (transposed direct form II, as sosfilt) is fed the cascade so
            # far, c @ s + d * u; its state (z1, z2) is entries 2i, 2i + 1 of s
            j = 2 * i
            bi = np.array([b1 - a1 * b0, b2 - a2 * b0])
            a[j:j + 2, :j] = np.outer(bi, c[:j])
            a[j:j + 2, j:j + 2] = [[-a1, 1.0], [-a2, 0.0]]
            b[j:j + 2] = bi * d
            c = b0 * c
            c[j] = 1.0
            d = b0 * d
        a, b, c, self.to_modal = _modal_basis(a, b, c)
        k = _BLOCK
        powers = [np.eye(n_state)]  # A^j, j = 0..K
        for _ in range(k):
            powers.append(a @ powers[-1])
        h = np.array([d] + [c @ powers[j] @ b for j in range(k - 1)])  # impulse response
        lag = np.arange(k)[:, None] - np.arange(k)[None, :]
        toeplitz = np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0)  # (K, K)
        # row-vector form, one block per row: y_b = u_b T^T + s_b O^T, z_b = u_b R^T
        self.toeplitz_t = np.ascontiguousarray(toeplitz.T)
        self.observe_t = np.ascontiguousarray(np.array([c @ powers[j] for j in range(k)]).T)  # (S, K)
        self.reach_t = np.ascontiguousarray(np.array([powers[k - 1 - i] @ b for i in range(k)]))  # (K, S)
        self.carries = {0: _StateCarry(powers[k])}

    def carry(self, level):
        """The :class:`_StateCarry` of recursion ``level``, built on first use.

        A gunicorn worker's threads share this cached plan. Each level is a function of the
        one below only, so two threads building one level at once store equal matrices
        under the same key: no lock is needed, and no level can land in another's place.
        """
        if level not in self.carries:
            self.carries[level] = _StateCarry(self.carry(level - 1).f_next)
        return self.carries[level]


def _n_blocks(n):
    """Blocks of K samples for ``n`` samples (whole super-blocks when over one)."""
    nb = -(-n // _BLOCK)
    return -(-nb // _BLOCK2) * _BLOCK2 if nb > _BLOCK2 else nb


def _blocks(n):
    """A zeroed (blocks, K) buffer for ``n`` samples."""
    return np.zeros((_n_blocks(n), _BLOCK))


def _run(plan, u, n, s0):
    """Filter the first ``n`` samples of ``u`` (a :func:`_blocks` buffer) from modal state ``s0`` (S,).

    ``plan``: a :class:`_BlockFilter`. Returns (n,).
    """
    s0 = s0[None, :]  # one row, as the blocks are
    if len(u) * _BLOCK * _BLOCK <= _SINGLE_THREAD_MNK:  # a strip: every product is small, no chunking
        y = u @ plan.toeplitz_t
        states = _carry_states(plan, 0, u @ plan.reach_t, s0, np.matmul)
        y += states @ plan.observe_t
    else:
        y = _matmul(u, plan.toeplitz_t)  # each block's response to its own input
        states = _carry_states(plan, 0, _matmul(u, plan.reach_t), s0, _matmul)  # each block's start
        y += _matmul(states, plan.observe_t)  # plus the response to that state
    return y.reshape(-1)[:n]


def _modal_basis(a, b, c):
    """(A, B, C) in the system's real modal basis, and the map of states into it.

    ``A = V Lambda V^-1`` with one 2 x 2 block ``[[re, im], [-im, re]]`` per complex
    pole pair (a scaled rotation, whose powers never grow) and a 1 x 1 block per
    real pole. In the sections' own (DF2T) coordinates the powers of A grow about
    100-fold before they decay when two poles nearly coincide, as the 0.5 Hz
    high-pass's do, and every product of the block method would carry that growth
    into its rounding: 1e-11 of the signal's scale against 1e-12 here (scipy's own
    loop: 1e-13). Keeps the given basis when V is ill-conditioned (nearly equal
    real poles), where the change of basis would cost more than it saves.
    """
    lam, vec = np.linalg.eig(a)
    cols, used = [], np.zeros(len(lam), bool)
    for i in range(len(lam)):
        if used[i]:
            continue
        used[i] = True
        v = vec[:, i]
        if abs(lam[i].imag) > 1e-12 * abs(lam[i]):  # a complex pair: take it once
            j = int(np.argmin(np.where(used, np.inf, np.abs(lam - lam[i].conj()))))
            used[j] = True
            v = v if lam[i].imag > 0 else v.conj()
            pair = np.stack((v.real, v.imag), axis=1)
            cols.append(pair / np.linalg.norm(pair))
        else:
            cols.append((v.real / np.linalg.norm(v.real))[:, None])
    basis = np.concatenate(cols, axis=1)
    if np.linalg.cond(basis) > 1e6:
        return a, b, c, np.eye(len(a))
    inverse = np.linalg.inv(basis)
    return inverse @ a @ basis, inverse @ b, c @ basis, inverse


class _StateCarry:
    """Matrices solving ``s_{b+1} = F s_b + z_b`` over K2 steps at once (row vectors)."""

    def __init__(self, f):
        k2, n_state = _BLOCK2, len(f)
        powers_t = [np.eye(n_state)]  # (F^j)^T
        for _ in range(k2):
            powers_t.append(powers_t[-1] @ f.T)
        # s_j = s_0 (F^j)^T + sum_{i<j} z_i (F^(j-1-i))^T, for j = 0..K2
        within = np.zeros((k2 * n_state, (k2 + 1) * n_state))
        for i in range(k2):
            for j in range(i + 1, k2 + 1):
                within[i * n_state:(i + 1) * n_state, j * n_state:(j + 1) * n_state] = powers_t[j - 1 - i]
        self.within = np.ascontiguousarray(within[:, :k2 * n_state])  # (K2 S, K2 S): states 0..K2-1
        self.to_next = np.ascontiguousarray(within[:, k2 * n_state:])  # (K2 S, S): the next start
        self.from_start = np.concatenate(powers_t[:k2], axis=1)  # (S, K2 S)
        self.f_next = powers_t[k2].T  # F^K2: the recursion one level up


def _carry_states(plan, level, z, s0, matmul):
    """States s_0..s_{m-1} (m, S) of ``s_{b+1} = F s_b + z_b`` (F of this level), from ``s0`` (1, S)."""
    m, n_state = z.shape
    carry = plan.carry(level)
    k2 = _BLOCK2
    if m <= k2:  # one super-block: the leading blocks of its matrices
        states = s0 @ carry.from_start[:, :m * n_state]
        if m > 1:
            states += z[:m - 1].reshape(1, -1) @ carry.within[:(m - 1) * n_state, :m * n_state]
        return states.reshape(m, n_state)
    nc = -(-m // k2)
    if nc * k2 != m:
        z = np.concatenate((z, np.zeros((nc * k2 - m, n_state))))
    z = z.reshape(nc, k2 * n_state)
    starts = _carry_states(plan, level + 1, matmul(z, carry.to_next), s0, matmul)  # super-blocks' starts
    states = matmul(z, carry.within)
    states += matmul(starts, carry.from_start)
    return states.reshape(nc * k2, n_state)[:m]


@lru_cache(maxsize=32)
def _block_filter(sos_bytes, n_sections):
    return _BlockFilter(np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6))


def _plan(sos):
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    return _block_filter(sos.tobytes(), len(sos))


def sosfilt(sos, x, zi):
    """``scipy.signal.sosfilt(sos, x, zi=zi)[0]``: cascaded second-order sections.

    ``sos``: (sections, 6); ``x``: (n,), any unit; ``zi``: (sections, 2) initial
    transposed-direct-form-II states (sosfilt's), in ``x``'s unit. Returns y (n,)
    float64, equal to scipy's to float rounding (block state-space, see above).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    plan = _plan(sos)
    n = len(x)
    if n == 0:
        return np.zeros(0)
    u = _blocks(n)
    u.reshape(-1)[:n] = x
    return _run(plan, u, n, plan.to_modal @ np.asarray(zi, dtype=np.float64).reshape(-1)).copy()


def sosfiltfilt(sos, x, padlen, zi=None):
    """Zero-phase forward-backward filtering: ``scipy.signal.sosfiltfilt(sos, x, padlen=padlen)``.

    ``x``: (n,), any unit, ``0 <= padlen < n``; ``zi``: ``sosfilt_zi(sos)`` when
    already at hand. scipy's steps: odd extension by ``padlen`` samples at each end,
    forward pass from ``zi * ext[0]``, backward pass from ``zi * y[-1]``, trim.
    Returns (n,) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    n = len(x)
    if not 0 <= padlen < n:  # as scipy: an empty x is an error too
        raise ValueError(f"x (length {n}) must be longer than padlen ({padlen})")
    plan = _plan(sos)
    zi_modal = plan.to_modal @ (sosfilt_zi(sos) if zi is None else np.asarray(zi, dtype=np.float64)).reshape(-1)
    m = n + 2 * padlen
    u = _blocks(m)
    ext = u.reshape(-1)[:m]  # the extended signal, written straight into the blocks
    ext[padlen:padlen + n] = x
    if padlen > 0:  # odd extension about the end samples (scipy's odd_ext)
        np.subtract(2 * x[0], x[padlen:0:-1], out=ext[:padlen])
        np.subtract(2 * x[-1], x[-2:-(padlen + 2):-1], out=ext[padlen + n:])
    y = _run(plan, u, m, zi_modal * ext[0])
    u = _blocks(m)
    u.reshape(-1)[:m] = y[::-1]
    y = _run(plan, u, m, zi_modal * y[-1])[::-1]
    return y[padlen:padlen + n]


# ---------------------------------------------------------------- resampling


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


def resample_poly(x, up, down):
    """Polyphase FIR resampling by ``up / down``: ``scipy.signal.resample_poly(x, up, down)``.

    ``x``: (n,) float64, any unit. scipy's default anti-aliasing filter (Kaiser
    window, beta 5, 10 zero-crossings each side) and output alignment, zero-padded
    at both ends. Returns ``ceil(n * up / down)`` samples, float64 (a copy of ``x``
    when the ratio is 1).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    up, down = int(up), int(down)
    if up < 1 or down < 1:
        raise ValueError("up and down must be >= 1")
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
    # x with zeros around it: input index i sits at i + left
    left = max(0, -s_lo)
    right = max(0, (nb - 1) * down + s_hi + 1 - n_in)
    padded = np.zeros(left + n_in + right)
    padded[left:left + n_in] = x
    out = np.empty((nb, up))
    for r0, r1, lo, matrix in groups:
        span = matrix.shape[0]
        start = left + lo
        windows = np.lib.stride_tricks.as_strided(
            padded[start:], shape=(nb, span), strides=(down * padded.strides[0], padded.strides[0]),
            writeable=False)
        out[:, r0:r1] = _matmul(np.ascontiguousarray(windows), matrix)
    return out.reshape(-1)[:n_out]


# ---------------------------------------------------------------- moving average


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


# ---------------------------------------------------------------- peaks


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

    The greedy is sequential by nature. It runs as a plain Python loop over lists:
    only peaks still kept scan their neighbours, so it costs about 0.15-0.25 us per
    peak (about 20 us for a 10-s strip's ~160 envelope maxima, 6-7 ms for a 30-min
    record's 33,000; scipy's whole compiled find_peaks: 16 us and 3 ms). Vectorised rounds (keep every peak ranked above all undecided peaks
    within reach, drop their neighbours, repeat) give the same result but took 3 to
    5 rounds on ECG envelopes and were several times slower at strip sizes.
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


# ---------------------------------------------------------------- sigmoid


def expit(x):
    """The logistic sigmoid ``1 / (1 + exp(-x))`` (``scipy.special.expit``), elementwise.

    Computed from ``exp(-|x|)``, which never overflows, so very negative inputs give
    0 without a RuntimeWarning. Agrees with scipy to a few ulp. Returns float64.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# ---------------------------------------------------------------- median


def median_1d(v):
    """``np.nanmedian(v)`` of a 1-D float array: the same numpy scalar, NaNs ignored.

    np.median and np.nanmedian spend ~15 us in Python before sorting anything, which
    on a strip's few dozen values is most of their cost; a request takes several.
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
    ``a``'s dtype, as np.median computes them, at half its cost on a strip's (n, 360)
    windows. NaNs are not looked for: callers pass finite values.
    """
    m = a.shape[1]
    lo, hi = (m - 1) // 2, m // 2
    p = np.partition(a, (lo, hi), axis=1)
    return ((p[:, lo] + p[:, hi]) / 2)[:, None]


# ---------------------------------------------------------------- derivative


def gradient_1d(x):
    """``np.gradient(x)`` of a 1-D float64 array (unit spacing, len >= 2): the same values.

    Central differences inside, one-sided at the ends; without np.gradient's
    argument handling, which costs more than the arithmetic on a 10-s strip.
    """
    out = np.empty_like(x)
    np.subtract(x[2:], x[:-2], out=out[1:-1])
    out[1:-1] /= 2.0
    out[0] = x[1] - x[0]
    out[-1] = x[-1] - x[-2]
    return out

"""Zero-phase IIR filtering by second-order sections: ``scipy.signal.sosfilt_zi``,
``sosfilt`` and ``sosfiltfilt`` in numpy.

An IIR filter is sequential by nature, and a Python loop over samples is far too
slow (a 30-min record is 650,000 samples). Block state-space processing gives the
same result with a few matrix products. The cascade of sections is one linear
system with state s (S = 2 per section):
    s[t+1] = A s[t] + B u[t],    y[t] = C s[t] + D u[t].
Over a block of K samples starting in state s_b, the output is a K x K
lower-triangular Toeplitz matrix (the impulse response) times the block's input
plus a K x S matrix times s_b, and the next block's state is F s_b (F = A^K) plus
a S x K matrix times the block's input: the input parts of all blocks are two
matmuls, and only the S-dimensional state is carried from block to block. That
carry, s_{b+1} = F s_b + z_b, is solved the same way in super-blocks of K2 blocks
(recursively, for very long signals), so no Python loop runs per sample or per
block. All of it is exact algebra: the output differs from scipy's loop by float
rounding, and F's powers shrink (stable poles), so errors do not grow along a
record. The state is kept in the system's real modal basis (see _modal_basis).

Block sizes: K = 32 and K2 = 16 were the fastest of the sizes tried; so filtered, a
strip or a record takes about as long as in scipy's compiled loop (docs/PERFORMANCE.md).
"""

from functools import lru_cache

import numpy as np

from .numeric import SINGLE_THREAD_MNK, matmul_single_threaded

_BLOCK = 32  # samples per block: the Toeplitz product costs n x K multiply-adds
_BLOCK2 = 16  # blocks per super-block: the carry costs n / K x K2 x S^2


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
    # a strip's products are all small; a long signal's are cut into single-threaded chunks
    matmul = np.matmul if len(u) * _BLOCK * _BLOCK <= SINGLE_THREAD_MNK else matmul_single_threaded
    y = matmul(u, plan.toeplitz_t)  # each block's response to its own input
    states = _carry_states(plan, 0, matmul(u, plan.reach_t), s0, matmul)  # each block's start
    y += matmul(states, plan.observe_t)  # plus the response to that state
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

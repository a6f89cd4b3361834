"""R-peak (QRS) detection on one ECG lead (numpy only).

``detect_r_peaks(x, fs)`` finds every beat of a strip or a whole record and marks it
where MIT-BIH's reference annotations mark beats, so that a classifier sees windows
centred the way it was trained.

Method, in the Pan & Tompkins (1985) / Hamilton & Tompkins (1986) family:

1. QRS energy envelope: mains hum subtracted (``ecg.signal.remove_mains``: the
   band-pass attenuates it, but its padding turns hum cut mid-cycle at a strip's end
   into a QRS-band transient), zero-phase 5-20 Hz band-pass (the QRS band: drops
   baseline wander, most of the P and T waves), derivative, squared, moving
   average over 100 ms centred on each sample. Polarity-free, and zero-phase all
   through, so the envelope's peak sits at the QRS's energy centre with no delay.
2. Candidates: the envelope's local maxima at least 200 ms apart (refractory period).
3. Adaptive threshold, sequential like Pan & Tompkins: running estimates of the
   signal and noise peak levels (RMS slope, so proportional to QRS amplitude),
   settled first by a warm-up pass over the first 8 s so that a strip's first beats
   are judged like the others; threshold 30 % of the way from noise to signal; search-back for a beat missed in
   an RR gap longer than 1.66 x the mean RR; a candidate 200-360 ms after a beat
   whose slope is under half that beat's is a T wave. The signal level only falls on
   beats taken, so after an artefact far larger than a QRS (an electrode pop) it
   would stand above every beat for minutes: 3 s without a beat (a pause Holter
   reports flag) seeds the levels again from the last seconds.
4. Standing out of the local noise (muscle and electrode-motion noise put humps in the
   envelope that clear the running levels of step 3): the envelope's local noise floor
   is the median of its RMS over 50-ms blocks within +-1.5 s of a candidate (near zero
   between the beats of a clean signal; QRS humps fill fewer than half the blocks). A
   candidate that clears step 3's threshold is a beat only if its level is 2.5 times
   that floor, or else if no candidate within +-half the mean RR is stronger than its
   level / 0.85: in a noisy stretch a beat is the strongest hump of its neighbourhood,
   a noise hump next to a beat is not. Neither test looks at shape or prematurity, so a
   large early ventricular beat passes the first and a run of them the second; a beat
   missed for noise is still taken back by step 3's search-back.
5. Of two detections closer than 300 ms (faster than 200 bpm), one under 80 % of
   the other's level is dropped (large P or T waves, noise spikes), unless the pair sits
   in an even run of such gaps: a fast regular rhythm, whose beats' levels may differ.
6. At a strip's first and last 50 ms, a detection holding under half a typical
   beat's slope energy is a beat cut by the edge, left to the neighbouring strip.

The detection is placed at the envelope's peak: measured on the 48 MIT-BIH records
this is within 30 ms of the reference annotation for about 99 % of beats, better
than the largest absolute deflection of the filtered signal (96-98.5 %), which
on wide or biphasic complexes often picks the S wave or the R wave the annotators
did not mark.
"""

from bisect import bisect_left, bisect_right

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .dsp import find_peaks, gradient_1d, median_1d, uniform_filter1d
from .signal import MAX_FS, MIN_FS, bandpass, remove_mains

QRS_BAND_HZ = (5.0, 20.0)  # where QRS energy dominates P/T waves, wander and muscle noise
QRS_BAND_ORDER = 2
ENVELOPE_S = 0.100  # moving-average length: about one QRS, so one envelope hump per beat
REFRACTORY_S = 0.200  # no two beats closer than this (300 bpm)
T_WAVE_WINDOW_S = 0.360  # a candidate this soon after a beat may be its T wave
T_WAVE_SLOPE_RATIO = 0.5  # ... and is one if its slope is under this fraction of the beat's
SLOPE_WINDOW_S = 0.150  # window around a candidate where its steepest slope is taken
THRESHOLD_FRACTION = 0.30  # threshold = noise level + this x (signal level - noise level)
SEARCH_BACK_RR = 1.66  # an RR gap longer than this x the mean RR is searched again ...
SEARCH_BACK_FRACTION = 0.6  # ... with the threshold lowered by this factor
CLOSE_PAIR_S = 0.300  # two detections closer than this (> 200 bpm) are suspect ...
CLOSE_PAIR_RATIO = 0.80  # ... and the weaker is dropped if under this x the stronger ...
EVEN_RUN_GAPS = 3  # ... unless, of the gaps this many each side and its own, ...
EVEN_RUN_TOLERANCE = 0.25  # ... all but one are within this fraction of its own gap: a fast
# regular rhythm (a T or P wave taken at each beat makes short-long gaps, noise uneven ones)
MIN_QRS_SLOPE = 1.0  # mV/s RMS of the band-passed slope: below this nothing is a QRS
EDGE_ZONE_S = 0.050  # detections this close to a strip's ends may be beats cut by them ...
EDGE_ENERGY_FRACTION = 0.5  # ... kept when holding this share of a typical beat's energy
INIT_S = 8.0  # the first seconds used to seed the signal and noise levels
RELEARN_S = 3.0  # no beat for this long (20 bpm): the levels are seeded again
RR_HISTORY = 8  # beats in the running mean RR
NOISE_BLOCK_S = 0.050  # the envelope's RMS over blocks this long: the noise floor's samples
NOISE_FLOOR_S = 3.0  # window centred on a candidate where its local noise floor is measured
NOISE_STEP_BLOCKS = 5  # the floor is measured every this many blocks (250 ms)
NOISE_FLOOR_QUANTILE = 0.5  # the floor: the median block (QRS humps fill fewer than half)
NOISE_FLOOR_RATIO = 2.5  # a beat's level is this many times its local floor ...
LOCAL_MAX_RR = 0.5  # ... or no candidate within +- this x the mean RR (no beat's neighbour) ...
LOCAL_MAX_FRACTION = 0.85  # ... is stronger than the beat's level over this (a PVC run's peers)
FIRST_RR_S = 1.0  # the mean RR assumed until two beats are found (60 bpm)


def qrs_energy_envelope(x, fs):
    """QRS band-pass ``f`` (mV), its slope ``d`` (mV/s) and the energy envelope ``env``.

    ``x``: shape (n,), mV at ``fs`` Hz. All three have shape (n,). ``env`` is the
    centred 100-ms moving average of ``d**2`` ((mV/s)**2): zero-phase, so a QRS's
    envelope peak is at its energy centre. Outside the strip the slope counts as
    zero: repeating the edge value instead would swell the envelope of a beat cut
    by the edge and pull its peak onto the edge.
    """
    f = bandpass(remove_mains(x, fs), fs, *QRS_BAND_HZ, order=QRS_BAND_ORDER)
    d = gradient_1d(f) * fs
    env = uniform_filter1d(d * d, envelope_width(fs), mode="constant")
    return f, d, env


def envelope_width(fs):
    """Samples in the envelope's moving average."""
    return max(int(round(ENVELOPE_S * fs)), 1)


def candidate_peaks(env, fs):
    """Local maxima of ``env`` (shape (n,)) at least one refractory period apart.

    The envelope is padded with a zero at each end so that a beat cut by the
    strip's first or last sample is still a candidate. Returns sample indices (k,).
    """
    padded = np.concatenate([[0.0], env, [0.0]])
    peaks = find_peaks(padded, distance=max(int(REFRACTORY_S * fs), 1))
    return peaks - 1


def window_max(y, centres, half_width):
    """Largest value of ``y`` (n,) within ``centres`` (k,) +- ``half_width`` samples."""
    offsets = np.arange(-half_width, half_width + 1)
    idx = np.minimum(np.maximum(centres[:, None] + offsets[None, :], 0), len(y) - 1)
    return y[idx].max(axis=1)


def local_noise_floor(env, cand, fs):
    """The envelope's local noise floor (RMS slope, mV/s) at each candidate (k,).

    ``env``: the energy envelope (n,). Its RMS over consecutive ``NOISE_BLOCK_S`` blocks;
    every ``NOISE_STEP_BLOCKS`` blocks, the ``NOISE_FLOOR_QUANTILE`` of the blocks within
    +-``NOISE_FLOOR_S``/2; a candidate takes the value of its step. Between beats the
    envelope is near zero in a clean signal and at the noise's level in a noisy one; QRS
    humps fill a minority of the blocks, so the quantile stays off them.
    """
    block = max(int(round(NOISE_BLOCK_S * fs)), 1)
    n_blocks = max(len(env) // block, 1)
    rms = np.sqrt(np.resize(env, n_blocks * block).reshape(n_blocks, block).mean(axis=1))
    half = max(int(round(NOISE_FLOOR_S / NOISE_BLOCK_S / 2)), 1)
    width = min(2 * half + 1, n_blocks)
    centres = np.arange(0, n_blocks, NOISE_STEP_BLOCKS)
    start = np.clip(centres - half, 0, n_blocks - width)
    rank = int(NOISE_FLOOR_QUANTILE * (width - 1))
    floor = np.partition(rms[start[:, None] + np.arange(width)[None, :]], rank, axis=1)[:, rank]
    step = np.minimum(cand // block, n_blocks - 1) // NOISE_STEP_BLOCKS
    return floor[step]


def stands_out(t_l, lv_l, gate, i, rr):
    """Whether candidate ``i`` stands out of the local noise (step 4).

    It does when its level ``lv_l[i]`` clears ``gate[i]`` (``NOISE_FLOOR_RATIO`` x its local
    noise floor), or else when no candidate within +-``LOCAL_MAX_RR`` x ``rr`` (the mean
    RR, samples) is much stronger: in a noisy stretch a beat is the strongest hump among
    its neighbours, a noise peak next to a beat is not. ``t_l``, ``lv_l``, ``gate``: lists
    over candidates, ``t_l`` increasing.
    """
    level = lv_l[i]
    if level > gate[i]:
        return True
    half = LOCAL_MAX_RR * rr
    lo, hi = bisect_left(t_l, t_l[i] - half), bisect_right(t_l, t_l[i] + half)
    return level >= LOCAL_MAX_FRACTION * max(lv_l[lo:hi])


def seed_levels(levels):
    """Starting (signal, noise) peak levels from the candidates' ``levels`` (k,) of a few
    seconds: the strongest third of the candidates are mostly beats, the median
    candidate is mostly noise or P/T waves."""
    top = np.sort(levels)[::-1]
    return float(median_1d(top[: max(2, len(top) // 3)])), float(median_1d(levels))


def adaptive_threshold(times, levels, slopes, fs, seed=None, floors=None):
    """Pan-Tompkins style decision over candidates.

    ``times``: candidate samples (k,), increasing; ``levels``: their envelope levels
    (RMS slope, mV/s); ``slopes``: their steepest slope (mV/s). Signal and noise
    peak levels are tracked with exponential averages, and an RR gap over
    ``SEARCH_BACK_RR`` x the mean RR is searched again for its strongest candidate
    above a lowered threshold. ``seed``: starting (signal, noise) levels, estimated
    from the first ``INIT_S`` seconds when None. ``floors``: the candidates' local noise
    floors (k,), mV/s (``local_noise_floor``): a beat must stand out of them
    (``stands_out``); None skips that test (the warm-up pass).
    Returns ``(is_beat, (signal_level, noise_level))``: a boolean mask (k,) and the
    levels reached at the end.
    """
    k = len(times)
    is_beat = np.zeros(k, bool)
    refractory = int(REFRACTORY_S * fs)
    t_window = int(T_WAVE_WINDOW_S * fs)

    spk, npk = seed_levels(levels[times < times[0] + int(INIT_S * fs)]) if seed is None else seed

    # plain Python lists: the loop is sequential by nature and runs once per
    # candidate (a few thousand for 30 min), far faster than numpy scalar indexing
    t_l, lv_l, sl_l = times.tolist(), levels.tolist(), slopes.tolist()
    gate = (NOISE_FLOOR_RATIO * floors).tolist() if floors is not None else [0.0] * k  # step 4
    beats, beat_slopes, rr = [], [], []
    rr_mean = None
    last = -1  # index of the last accepted candidate
    relearn, init, relearned_at = int(RELEARN_S * fs), int(INIT_S * fs), t_l[0] if k else 0
    i = 0
    while i < k:
        t, level = t_l[i], lv_l[i]
        threshold = npk + THRESHOLD_FRACTION * (spk - npk)
        if rr_mean is not None and t - beats[-1] > SEARCH_BACK_RR * rr_mean:
            # a beat was probably missed since the last one: take back the strongest
            # candidate of the gap that clears a lowered threshold, then resume after it
            low = SEARCH_BACK_FRACTION * threshold
            best = -1
            for j in range(last + 1, i):
                if t_l[j] - beats[-1] > refractory and lv_l[j] > low and (best < 0 or lv_l[j] > lv_l[best]):
                    best = j
            if best >= 0:
                rr.append(t_l[best] - beats[-1])
                rr_mean = sum(rr[-RR_HISTORY:]) / len(rr[-RR_HISTORY:])
                beats.append(t_l[best])
                beat_slopes.append(sl_l[best])
                is_beat[best] = True
                spk = 0.25 * lv_l[best] + 0.75 * spk
                last = best
                i = best + 1
                continue
        if t - max(beats[-1] if beats else 0, relearned_at) > relearn:
            # no beat for RELEARN_S: a large artefact has probably lifted the signal level
            # above the beats (it only falls on beats taken, so it would stay there):
            # seed it again from the last seconds, as at the start
            spk, npk = seed_levels(levels[bisect_left(t_l, t - init):i + 1])
            threshold = npk + THRESHOLD_FRACTION * (spk - npk)
            relearned_at = t
        if level > threshold and level > MIN_QRS_SLOPE and stands_out(t_l, lv_l, gate, i, rr_mean or FIRST_RR_S * fs):
            if beats and t - beats[-1] < t_window and sl_l[i] < T_WAVE_SLOPE_RATIO * beat_slopes[-1]:
                npk = 0.125 * level + 0.875 * npk  # a T wave: noise
            else:
                if beats:
                    rr.append(t - beats[-1])
                    rr_mean = sum(rr[-RR_HISTORY:]) / len(rr[-RR_HISTORY:])
                beats.append(t)
                beat_slopes.append(sl_l[i])
                is_beat[i] = True
                spk = 0.125 * level + 0.875 * spk
                last = i
        else:
            npk = 0.125 * level + 0.875 * npk
        i += 1

    return is_beat, (spk, npk)


def in_even_run(gaps):
    """Whether each of ``gaps`` (m,) (samples between consecutive detections) sits in an
    even run: of the ``EVEN_RUN_GAPS`` gaps each side and itself, all but one within
    ``EVEN_RUN_TOLERANCE`` of it. Near the ends only the gaps there are counted, at least
    ``EVEN_RUN_GAPS`` + 1 of them. Returns (m,) bool.

    One uneven gap is allowed so that a beat missed or a detection placed late within the
    run does not break it for its neighbours.
    """
    gaps = np.asarray(gaps, np.float64)
    if len(gaps) < EVEN_RUN_GAPS + 1:
        return np.zeros(len(gaps), bool)
    padded = np.pad(gaps, EVEN_RUN_GAPS, constant_values=np.nan)  # past the ends
    around = sliding_window_view(padded, 2 * EVEN_RUN_GAPS + 1)
    present = np.isfinite(around).sum(axis=1)
    with np.errstate(invalid="ignore"):
        even = np.abs(around / gaps[:, None] - 1.0) < EVEN_RUN_TOLERANCE  # NaN: False
    return (even.sum(axis=1) >= present - 1) & (present >= EVEN_RUN_GAPS + 1)


def drop_weaker_of_close_pairs(beats, levels, fs):
    """Of two detections closer than ``CLOSE_PAIR_S``, drop a clearly weaker one.

    Beats that close (> 200 bpm) are rare outside flutter and fast tachycardias; a much
    weaker partner is usually a large P or T wave or a noise spike. Pairs of similar
    strength are kept, and so are pairs in an even run of gaps (``in_even_run``): a fast
    regular rhythm, where a PVC's or a taller beat's partner may be well under 0.8 of it.
    Two passes handle triplets. Returns (beats, levels).
    """
    for _ in range(2):
        if len(beats) < 2:
            break
        gaps = np.diff(beats)
        close = (gaps < int(CLOSE_PAIR_S * fs)) & ~in_even_run(gaps)
        drop = np.zeros(len(beats), bool)
        drop[:-1] |= close & (levels[:-1] < CLOSE_PAIR_RATIO * levels[1:])
        drop[1:] |= close & (levels[1:] < CLOSE_PAIR_RATIO * levels[:-1])
        if not drop.any():
            break
        beats, levels = beats[~drop], levels[~drop]
    return beats, levels


def drop_beats_cut_by_the_edges(beats, d, fs):
    """Drop detections at a strip's ends holding under half a typical beat's energy.

    A beat cut by the strip's first or last sample is seen by both neighbouring
    strips. The side holding most of its QRS keeps it: the slope energy (``d**2``,
    ``d``: (n,) mV/s) within +-100 ms of a detection in the first or last 50 ms is
    compared with the median of the strip's other beats. ``beats``: sorted sample
    indices (k,). Returns the kept ones.
    """
    n = len(d)
    zone = max(int(EDGE_ZONE_S * fs), 2)
    at_edge = (beats < zone) | (beats >= n - zone)
    if not at_edge.any():
        return beats
    reach = envelope_width(fs)
    cumulative = np.concatenate([[0.0], np.cumsum(d * d)])
    energy = cumulative[np.minimum(beats + reach + 1, n)] - cumulative[np.maximum(beats - reach, 0)]
    inner = energy[~at_edge]
    typical = median_1d(inner) if len(inner) >= 2 else np.max(energy)
    return beats[~at_edge | (energy >= EDGE_ENERGY_FRACTION * typical)]


def place_edge_beats(beats, d, fs):
    """Re-place detections within one envelope width of a strip's ends.

    There the zero-padded envelope leans inwards (half its window is empty); an
    envelope that repeats the edge slope instead is closer to the whole beat's
    energy centre, found within +-50 ms. ``beats``: sorted (k,); returns (k',) sorted.
    """
    n, width = len(d), envelope_width(fs)
    near = np.flatnonzero((beats < width) | (beats >= n - width))
    if not len(near):
        return beats
    env = uniform_filter1d(d * d, width, mode="nearest")
    half = width // 2
    beats = beats.copy()
    for i in near:
        lo, hi = max(beats[i] - half, 0), min(beats[i] + half + 1, n)
        beats[i] = lo + int(np.argmax(env[lo:hi]))
    return np.unique(beats)


def detect_r_peaks(x, fs, envelope=None):
    """R-peak sample indices of one ECG lead.

    Parameters
    ----------
    x : array_like, shape (n,)
        One lead in millivolts, any polarity, any length (a 10-s strip or a whole
        record). Baseline wander and offset need not be removed.
    fs : float
        Sampling rate in Hz, 100 to 1000.
    envelope : tuple of three ndarrays, optional
        ``qrs_energy_envelope(x, fs)``, when the caller has computed it (``ecg.pipeline``
        judges each beat's signal quality on the same envelope).

    Returns
    -------
    peaks : ndarray of np.int64, shape (k,)
        Sorted, unique sample indices into ``x``, one per detected beat, at the QRS
        complex's energy centre (where MIT-BIH annotates beats). Empty when ``x`` is
        too short or holds no QRS complex (a flat line).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    if not MIN_FS <= fs <= MAX_FS:
        raise ValueError(f"fs must be within {MIN_FS}..{MAX_FS} Hz, got {fs}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite samples")
    empty = np.zeros(0, np.int64)
    if len(x) < max(int(ENVELOPE_S * fs), 3):
        return empty

    _, d, env = qrs_energy_envelope(x, fs) if envelope is None else envelope
    cand = candidate_peaks(env, fs)
    if not len(cand):
        return empty
    # thresholds work on RMS slope (mV/s), proportional to QRS amplitude: on energy
    # a beat half as tall as its neighbours would sit at a quarter of their level
    levels = np.sqrt(env[cand])
    slopes = window_max(np.abs(d), cand, int(SLOPE_WINDOW_S * fs / 2))
    # warm-up pass over the first seconds, only to settle the signal and noise levels:
    # the real pass then treats a strip's first beats like any others
    warm = cand < cand[0] + int(INIT_S * fs)
    _, seed = adaptive_threshold(cand[warm], levels[warm], slopes[warm], fs)
    floors = local_noise_floor(env, cand, fs)
    is_beat, _ = adaptive_threshold(cand, levels, slopes, fs, seed, floors)
    beats, _ = drop_weaker_of_close_pairs(cand[is_beat], levels[is_beat], fs)
    beats = drop_beats_cut_by_the_edges(beats, d, fs)
    beats = place_edge_beats(beats, d, fs)
    return beats.astype(np.int64)

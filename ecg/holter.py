"""The Holter report's counts from a day of beat labels (numpy only).

Every function takes the beats in time order: ``is_v`` (n,) bool, True for a ventricular
(V) beat, and where times matter ``times_s`` (n,) float, each beat's R peak in seconds
from the recording's start; ``part`` (n,) int, optional, the continuous part of the
recording each beat is in (a recording with gaps has several): beats in different parts
are never consecutive. The counts, precisely (docs/HOLTER.md says the same):

- a *V run* is a maximal stretch of consecutive V beats (no N beat inside, none V on
  either side). Its length is its number of beats.
- ``couplets``: V runs of exactly 2 beats. ``triplets``: V runs of exactly 3 beats.
- ``ventricular_runs``: V runs of 3 or more beats. A triplet is also a ventricular run
  (the run list holds it, the triplet count counts it too). A run's rate is
  60 x (beats - 1) / (its last R time - its first R time), in bpm; it is ``NSVT``
  (2017 AHA/ACC/HRS: 3 or more consecutive ventricular beats faster than 100 bpm,
  lasting under 30 s) when faster than 100 bpm and shorter than 30 s, ``VT`` (sustained)
  when faster than 100 bpm for 30 s or more, ``slow`` (an idioventricular rhythm) otherwise.
- an *isolated PVC* is a V run of 1 beat.
- ``bigeminy_episodes``: maximal chains of at least ``MIN_EPISODE_PVCS`` isolated PVCs
  in which each next PVC follows exactly 1 N beat after the previous one (N V N V N V);
  ``trigeminy_episodes`` the same with exactly 2 N beats between them (V N N V N N V).
  A couplet or a run breaks a chain; one PVC can end a bigeminy chain and start a
  trigeminy one.
- a *pause* is an RR interval of ``PAUSE_S`` or more, a *long pause* one of ``LONG_PAUSE_S``
  or more; an interval that overlaps or touches a stretch where beats may have gone unseen
  (the caller's: unreadable signal, ventricular flutter, a baseline jumping) is not one, nor
  is one where more than ``PAUSE_CONTEXT_UNSEEN`` of the ``PAUSE_CONTEXT_S`` before its first
  beat and after its second is unseen (two detections that stood out of a lead off's noise), nor
  one either of whose beats stands less than ``PAUSE_BEAT_DB`` out of its noise on its own.
- heart rate: from RR intervals between consecutive beats, both readable (``readable``,
  optional: the beats not judged unreadable; a lead off carrying noise is detections the quality
  flag judged unreadable, whose intervals are the noise's, not the heart's), no longer than
  ``MAX_RR_S``; an interval belongs to the window holding its second beat. A window's rate is
  60 x (intervals) / (their total seconds); 1-min windows with fewer than
  ``MIN_RR_PER_MINUTE`` intervals (no readable beats) have none. ``min``/``max`` are the
  extreme 1-min rates, ``mean`` the whole recording's (all its counted intervals).
"""

import numpy as np

from .quality import merge_intervals

MIN_EPISODE_PVCS = 3  # bigeminy/trigeminy: three PVC cycles, as most Holter software counts them
NSVT_MIN_RATE_BPM = 100.0  # 2017 AHA/ACC/HRS: ventricular tachycardia is faster than 100 bpm ...
SUSTAINED_VT_S = 30.0  # ... and sustained when it lasts 30 s or more
MAX_RR_S = 3.0  # a longer RR is a pause or a detection gap: it does not enter heart rates
# pauses: up to 2 s they are common and mostly benign; from 3 s on more likely symptomatic and
# pathological (Grauer & Leytem 1992, Am Fam Physician 45:1641), and rare: 0.8 % of 6,470 24-h
# recordings held one (Hilgard, Ezri & Denes 1985, Am J Cardiol 55:1005)
PAUSE_S = 2.0
LONG_PAUSE_S = 3.0
# a pause is read only where the signal around it was: in noise alone (a lead off carrying
# nstdb's muscle noise) every "pause" between two detections judged readable had over 0.82 of the
# 30 s each side unreadable, and of DS1's 14 true pauses (MLII, clean) the most had 0.48 (207,
# beside its ventricular flutter): two thirds lies between. Chosen on DS1 (docs/HOLTER.md).
PAUSE_CONTEXT_S = 30.0
PAUSE_CONTEXT_UNSEEN = 2.0 / 3.0
# a pause's two beats each stand this far out of their noise on their own (ecg.quality.beat_snrs),
# as far as a readable stretch must: the first detection in a lead off's noise stands 6-9 dB out of
# it, the beats of DS1's true pauses 13.5 dB or more (clean MLII). Chosen on DS1 (docs/HOLTER.md).
PAUSE_BEAT_DB = 12.0
HR_WINDOW_S = 60.0  # the 1-min windows of heart_rate_bpm min / max
MIN_RR_PER_MINUTE = 10  # a 1-min window with fewer intervals (under 10 bpm of data) has no rate
HOUR_S = 3600.0


def consecutive(part, n):
    """(n - 1,) bool: beat i + 1 follows beat i in the same continuous ``part`` (None: one part)."""
    if part is None:
        return np.ones(max(n - 1, 0), dtype=bool)
    return np.diff(np.asarray(part)) == 0


def v_runs(is_v, part=None):
    """Maximal runs of consecutive V beats: ``(starts, lengths)``, each (k,) int64.

    ``starts``: index of each run's first beat in ``is_v`` (n,) bool; ``lengths``: its beats.
    """
    v = np.asarray(is_v, dtype=bool)
    linked = np.zeros(len(v) + 1, dtype=bool)  # linked[i]: beat i continues beat i - 1's run
    linked[1:-1] = v[1:] & v[:-1] & consecutive(part, len(v))
    starts = np.flatnonzero(v & ~linked[:-1])
    ends = np.flatnonzero(v & ~linked[1:]) + 1
    return starts.astype(np.int64), (ends - starts).astype(np.int64)


def run_counts(is_v, part=None):
    """``{"isolated_pvcs", "couplets", "triplets"}``: V runs of exactly 1, 2 and 3 beats."""
    _, lengths = v_runs(is_v, part)
    return {"isolated_pvcs": int(np.count_nonzero(lengths == 1)),
            "couplets": int(np.count_nonzero(lengths == 2)),
            "triplets": int(np.count_nonzero(lengths == 3))}


def ventricular_runs(is_v, times_s, part=None):
    """V runs of 3 or more beats: a list of ``{"start_s", "beats", "duration_s", "rate_bpm", "kind"}``.

    ``times_s`` (n,): R times in seconds. ``kind``: "NSVT", "VT" or "slow" (module docstring).
    """
    t = np.asarray(times_s, dtype=np.float64)
    starts, lengths = v_runs(is_v, part)
    out = []
    for s, k in zip(starts.tolist(), lengths.tolist()):
        if k < 3:
            continue
        duration = float(t[s + k - 1] - t[s])
        rate = 60.0 * (k - 1) / duration if duration > 0 else float("inf")
        kind = ("slow" if rate <= NSVT_MIN_RATE_BPM
                else "VT" if duration >= SUSTAINED_VT_S else "NSVT")
        out.append({"start_s": float(t[s]), "beats": k, "duration_s": duration,
                    "rate_bpm": rate, "kind": kind})
    return out


def pvc_chains(is_v, n_between, part=None):
    """Chains of isolated PVCs ``n_between`` N beats apart: ``(first, count)`` per chain, (k,) each.

    ``first``: index of the chain's first PVC; ``count``: its PVCs. Only chains of at
    least ``MIN_EPISODE_PVCS`` PVCs are kept: bigeminy is ``n_between=1``, trigeminy 2.
    """
    starts, lengths = v_runs(is_v, part)
    single = starts[lengths == 1]  # isolated PVCs, in order
    if len(single) < MIN_EPISODE_PVCS:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # consecutive isolated PVCs are n_between N apart only if no run lies between them:
    # a run would put V beats in the gap, which then holds more than n_between beats
    linked = np.diff(single) == n_between + 1
    if part is not None:
        linked &= np.diff(np.asarray(part)[single]) == 0
    firsts, counts = v_runs(linked)  # runs of links: a chain of k links holds k + 1 PVCs
    keep = counts + 1 >= MIN_EPISODE_PVCS
    return single[firsts[keep]], counts[keep] + 1


def episode_counts(is_v, part=None):
    """``{"bigeminy_episodes", "trigeminy_episodes"}``: numbers of chains (module docstring)."""
    return {"bigeminy_episodes": len(pvc_chains(is_v, 1, part)[0]),
            "trigeminy_episodes": len(pvc_chains(is_v, 2, part)[0])}


def pause_starts(times_s, part=None, unseen=None, own_snr_db=None):
    """Indices (k,) of the beats that start a pause: an RR interval of ``PAUSE_S`` or more between
    consecutive ``times_s`` (s) of the same ``part``, each of whose two beats stands
    ``PAUSE_BEAT_DB`` or more out of its noise (``own_snr_db`` (n,), ``ecg.quality.beat_snrs``'s;
    default: all do).

    ``unseen``: (u, 2) ``[start, end]`` seconds where beats may have gone undetected (unreadable
    or flutter stretches): an interval overlapping or touching one is not a pause (a lead coming
    off or back on is a step the detector can take for the beat that ends or starts it), nor is
    one whose surroundings are mostly unseen (:func:`unseen_around`, ``PAUSE_CONTEXT_UNSEEN``).
    """
    t = np.asarray(times_s, dtype=np.float64)
    i = np.flatnonzero((np.diff(t) >= PAUSE_S) & consecutive(part, len(t)))
    if own_snr_db is not None:
        clear = np.asarray(own_snr_db) >= PAUSE_BEAT_DB
        i = i[clear[i] & clear[i + 1]]
    if unseen is None or not len(unseen) or not len(i):
        return i
    u = np.asarray(unseen, dtype=np.float64).reshape(-1, 2)
    u = u[np.argsort(u[:, 0], kind="stable")]
    # of the stretches starting by a pause's end, the latest-ending one reaches back into it
    last = np.searchsorted(u[:, 0], t[i + 1], side="right") - 1
    reach = np.maximum.accumulate(u[:, 1])[np.maximum(last, 0)]
    i = i[(last < 0) | (reach < t[i])]
    return i[unseen_around(t[i], t[i + 1], u) <= PAUSE_CONTEXT_UNSEEN]


def unseen_seconds_before(times_s, unseen):
    """Seconds (k,) of the union of ``unseen`` ((u, 2) ``[start, end]``) before each of ``times_s`` (k,)."""
    t = np.asarray(times_s, dtype=np.float64)
    starts, ends = merge_intervals(unseen, dtype=np.float64).T
    if not len(starts):
        return np.zeros(len(t))
    done = np.concatenate([[0.0], np.cumsum(ends - starts)])  # unseen before each stretch's start
    k = np.searchsorted(starts, t, side="right")  # the stretches starting by each time
    last = np.maximum(k - 1, 0)  # the last of them, if any
    inside = np.clip(t - starts[last], 0.0, ends[last] - starts[last])
    return np.where(k > 0, done[last] + inside, 0.0)


def unseen_around(first_s, second_s, unseen):
    """The share (k,) of ``PAUSE_CONTEXT_S`` before each ``first_s`` and after each ``second_s``
    (the R times of a pause's two beats) that ``unseen`` ((u, 2) ``[start, end]`` seconds) covers."""
    first, second = np.asarray(first_s, dtype=np.float64), np.asarray(second_s, dtype=np.float64)
    ends = np.concatenate([first - PAUSE_CONTEXT_S, first, second, second + PAUSE_CONTEXT_S])
    cover = unseen_seconds_before(ends, unseen).reshape(4, -1)
    return (cover[1] - cover[0] + cover[3] - cover[2]) / (2 * PAUSE_CONTEXT_S)


def pauses(times_s, part=None, unseen=None, own_snr_db=None):
    """The pauses (:func:`pause_starts`): (k, 2) float64, ``[first, second]`` R time (s) of each."""
    t = np.asarray(times_s, dtype=np.float64)
    i = pause_starts(t, part, unseen, own_snr_db)
    return np.stack([t[i], t[i + 1]], axis=1)


def pause_summary(times_s, part=None, unseen=None, own_snr_db=None):
    """``{"pauses", "long_pauses", "longest_pause_s"}``: each pause ``{"start_s", "duration_s"}``
    (:func:`pauses`), how many last ``LONG_PAUSE_S`` or more, and the longest's seconds (None: none)."""
    found = pauses(times_s, part, unseen, own_snr_db)
    duration = found[:, 1] - found[:, 0]
    return {"pauses": [{"start_s": float(a), "duration_s": float(d)} for a, d in zip(found[:, 0], duration)],
            "long_pauses": int(np.count_nonzero(duration >= LONG_PAUSE_S)),
            "longest_pause_s": float(duration.max()) if len(duration) else None}


def rr_in_windows(times_s, window_s, n_windows, part=None, readable=None):
    """Counted RR intervals per window: ``(count, total_s)``, each (n_windows,).

    An interval (consecutive ``times_s``, seconds, in the same ``part``, both ``readable``: (n,)
    bool, default all) counts when at most ``MAX_RR_S`` long, in the window
    ``floor(second beat's time / window_s)``.
    """
    t = np.asarray(times_s, dtype=np.float64)
    rr = np.diff(t)
    ok = (rr <= MAX_RR_S) & consecutive(part, len(t))
    if readable is not None:
        ok &= np.asarray(readable, dtype=bool)[1:] & np.asarray(readable, dtype=bool)[:-1]
    window = np.minimum((t[1:][ok] // window_s).astype(np.int64), max(n_windows - 1, 0))
    count = np.bincount(window, minlength=n_windows)[:n_windows]
    total = np.bincount(window, weights=rr[ok], minlength=n_windows)[:n_windows]
    return count, total


def heart_rate_summary(times_s, duration_s, part=None, readable=None):
    """``{"min", "mean", "max"}`` in bpm (module docstring); None for each when nothing counts."""
    n_windows = max(int(np.ceil(duration_s / HR_WINDOW_S)), 1)
    count, total = rr_in_windows(times_s, HR_WINDOW_S, n_windows, part, readable)
    rated = count >= MIN_RR_PER_MINUTE
    if not count.sum():
        return {"min": None, "mean": None, "max": None}
    rates = 60.0 * count[rated] / total[rated]
    return {"min": float(rates.min()) if len(rates) else None,
            "mean": float(60.0 * count.sum() / total.sum()),
            "max": float(rates.max()) if len(rates) else None}


def hourly(times_s, is_v, duration_s, part=None, readable=None):
    """One row per hour from the start: ``{"hour_start_s", "beats", "ventricular_beats",
    "unreadable_beats", "heart_rate_mean"}``.

    ``readable``: (n,) bool, the beats not judged unreadable (default all). ``heart_rate_mean``:
    60 x the hour's counted RR intervals / their seconds, None when it has none. The last hour may
    be partial.
    """
    t = np.asarray(times_s, dtype=np.float64)
    v = np.asarray(is_v, dtype=bool)
    unreadable = np.zeros(len(t), bool) if readable is None else ~np.asarray(readable, dtype=bool)
    n_hours = max(int(np.ceil(duration_s / HOUR_S)), 1)
    hour = np.minimum((t // HOUR_S).astype(np.int64), n_hours - 1)
    beats = np.bincount(hour, minlength=n_hours)
    vent = np.bincount(hour[v], minlength=n_hours)
    lost = np.bincount(hour[unreadable], minlength=n_hours)
    count, total = rr_in_windows(t, HOUR_S, n_hours, part, readable)
    return [{"hour_start_s": h * HOUR_S, "beats": int(beats[h]), "ventricular_beats": int(vent[h]),
             "unreadable_beats": int(lost[h]),
             "heart_rate_mean": float(60.0 * count[h] / total[h]) if count[h] else None}
            for h in range(n_hours)]


def holter_summary(times_s, is_v, duration_s, analysed_s=None, readable=None, part=None, unseen=None,
                   own_snr_db=None):
    """The report's counts of n beats over a recording of ``duration_s`` seconds (gaps included).

    ``analysed_s``: the seconds the beats were sought in (the duration less the gaps and
    unreadable stretches; default the duration): PVCs per hour are per analysed hour.
    ``readable``: (n,) bool, the beats not judged unreadable (default all): the PVC
    burden is over those (an unreadable beat is never V, so it would dilute it), and the heart
    rates over the intervals between two of them. ``part``, ``unseen``, ``own_snr_db``:
    as :func:`pause_starts`.
    Returns a dict of plain Python numbers and lists (module docstring for each).
    """
    v = np.asarray(is_v, dtype=bool)
    n, n_v = len(v), int(np.count_nonzero(v))
    n_readable = n if readable is None else int(np.count_nonzero(readable))
    analysed_s = duration_s if analysed_s is None else analysed_s
    return {
        "total_beats": n,
        "normal_beats": n - n_v,
        "ventricular_beats": n_v,
        "unreadable_beats": n - n_readable,
        "pvc_burden_percent": 100.0 * n_v / n_readable if n_readable else 0.0,
        "pvc_per_hour": n_v / (analysed_s / HOUR_S) if analysed_s > 0 else 0.0,
        "heart_rate_bpm": heart_rate_summary(times_s, duration_s, part, readable),
        **run_counts(v, part),
        "ventricular_runs": ventricular_runs(v, times_s, part),
        **episode_counts(v, part),
        **pause_summary(times_s, part, unseen, own_snr_db),
        "hourly": hourly(times_s, v, duration_s, part, readable),
    }

"""One prediction: the ecg core's beats, one batched ONNX call, the card's decision rules.

Everything is vectorised over beats; the only per-beat Python is building the
response list.
"""

import time

import numpy as np

from ecg import MODEL_FS
from ecg.blocked_p import neighbour_qrs_size
from ecg.decision import MIN_RHYTHM_BEATS, OWN_RHYTHM_MIN_BEATS, classify, dominant_rhythm_mask
from ecg.dsp import median_1d
from ecg.features import equal_spans
from ecg.flutter import flutter_intervals
from ecg.pipeline import PREPROCESSING, extract_beats, upright_factor
from ecg.quality import QUALITY_LABELS, UNREADABLE

HR_RANGE_BPM = (30.0, 220.0)
LOW_AMPLITUDE_MV = 0.1  # peak to peak: a QRS is 0.5-3 mV; a lead in volts is 1000x smaller
TEMPLATE_CORR = PREPROCESSING["rr_features"].index("template_corr")
# real strips, even full of PVCs, have a median beat-to-template correlation >= 0.5;
# white or drifting noise, in which the detector still "finds" beats, stays under 0.25
MIN_TEMPLATE_CORR = 0.3
# said when the own-rhythm rule (ecg.decision.own_rhythm_mask) called beats N that the networks call V
OWN_RHYTHM_WARNING = ("{} beat(s) the networks would call V share the recording's dominant QRS shape, "
                      "on time and under 100 bpm: called N as the patient's own rhythm (a bundle branch "
                      "block, or a lead where normal beats look ventricular?)")
# the same rule with a pacemaker declared, in a request of any length
PACED_RHYTHM_WARNING = ("{} beat(s) the networks would call V share the request's dominant QRS shape, "
                        "on time and under 100 bpm: called N as paced beats (pacemaker declared)")

# said when a request, or a stretch between leads off, too short for that rule is mostly V calls of
# one on-time slow shape
SHORT_RHYTHM_WARNING = ("{} of the {} beats of a signal too short for the own-rhythm rule (a request, or a "
                        "stretch between two leads off of a minute or more, under " + str(OWN_RHYTHM_MIN_BEATS)
                        + " beats), called V, share one QRS shape, on time and under 100 bpm: a slow ventricular "
                        "rhythm, or the patient's own wide-QRS rhythm (a bundle branch block, pacing) that only "
                        + str(OWN_RHYTHM_MIN_BEATS) + " beats or more (about 2 min) recorded in one piece can tell "
                        "apart; if the patient has a pacemaker, send pacemaker: true")

# said when ecg.flutter finds stretches of a fast wave with no QRS complexes
FLUTTER_WARNING = ("{:.0f} s from {:.1f} s look like ventricular flutter or fibrillation (a fast regular wave "
                   "with no QRS complexes; the beats and calls there mean nothing): a life-threatening rhythm "
                   "if real, check the patient and the tracing")


class NoBeatsFound(Exception):
    pass


def no_beats_message(x, fs):
    """Why a request found no beat, with a hint when ``x`` (mV) is too small to be an ECG in mV."""
    message = f"No heartbeat could be detected in {len(x) / fs:.1f} s of signal (flat line, or no QRS complex found)."
    span = float(np.max(x) - np.min(x))
    if 0.0 < span < LOW_AMPLITUDE_MV:
        message += (f" Its peak-to-peak amplitude is {span:.3g}: signal_data is read in millivolts "
                    "(a signal in volts must be multiplied by 1000).")
    return message


class TooSlow(Exception):
    """The request's time budget ran out; the message is the stage done last."""


def _check_deadline(deadline, stage):
    """Stop between stages once ``deadline`` (a time.perf_counter() value) has passed."""
    if deadline is not None and time.perf_counter() > deadline:
        raise TooSlow(stage)


def _rounded_or_null(values, decimals):
    """List of rounded floats with None where a value is NaN (JSON null, never invented)."""
    out = np.round(values, decimals).astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def _quality_warnings(x, fs, n_beats, heart_rate):
    warnings = []
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    if span > 20.0:
        warnings.append(f"amplitude {span:.0f} mV peak to peak: is signal_data in millivolts?")
    elif span < LOW_AMPLITUDE_MV:
        warnings.append(f"very low amplitude ({span:.3f} mV peak to peak)")
    at_extremes = int(np.count_nonzero(x == hi) + np.count_nonzero(x == lo))
    if at_extremes > max(10, 0.01 * len(x)):
        warnings.append(f"{100 * at_extremes / len(x):.1f}% of samples sit at the signal's "
                        "minimum or maximum: clipped or saturated signal?")
    if heart_rate is not None and not HR_RANGE_BPM[0] <= heart_rate <= HR_RANGE_BPM[1]:
        warnings.append(f"heart rate {heart_rate:.0f} bpm is outside {HR_RANGE_BPM[0]:.0f}-"
                        f"{HR_RANGE_BPM[1]:.0f}: detection may be unreliable (noise?)")
    if n_beats < 3:
        warnings.append(f"only {n_beats} beat(s) detected in {len(x) / fs:.1f} s")
    return warnings


def predict(model, x, fs, derivation="MLII", apply_ruleguard=True, deadline=None, pacemaker=False):
    """The contract's response fields (no ids, timestamps or timing) for signal ``x`` at ``fs`` Hz.

    ``pacemaker``: the patient has one, so the request's dominant slow on-time shape is paced
    beats, N (``ecg.decision.own_rhythm_mask``).

    Raises :class:`NoBeatsFound` when the detector finds no beat (flat line, noise only),
    :class:`TooSlow` when ``deadline`` (a time.perf_counter() value) passes between stages.
    """
    beats = extract_beats(x, fs, version=model.preprocessing_version)
    if len(beats) == 0:
        raise NoBeatsFound()
    _check_deadline(deadline, "beat detection")
    p_raw = model.p_v(beats.windows, beats.features)
    _check_deadline(deadline, "the network")
    calls = classify(p_raw, beats.features, model.decision, apply_ruleguard,
                     windows=beats.windows, groups=beats.groups, signals=beats.runs, quality=beats.quality,
                     paced=pacemaker, qrs_sizes=qrs_sizes(beats))
    return build_result(model, beats, calls, x, fs, derivation, apply_ruleguard, pacemaker)


def qrs_sizes(beats):
    """``(size, neighbour_size)`` of ``beats`` (``ecg.pipeline.Beats``), as ``ecg.decision.classify`` takes them."""
    return beats.qrs_size_mv, neighbour_qrs_size(beats.qrs_size_mv, beats.features)


def overall_call(is_v, p_v):
    """The strip's call, its confidence and the risk level: V when any beat is V."""
    if is_v.any():
        overall_conf = round(float(p_v[is_v].max()), 6)
        # from the rounded figure the client sees, so that the published pair obeys the rule
        risk = "HIGH" if overall_conf >= 0.85 else "MEDIUM" if overall_conf >= 0.70 else "LOW"
        return "V", overall_conf, risk
    return "N", round(float(1.0 - p_v.max()), 6), "LOW"


def beat_list(beats, is_v, p_v):
    """The response's ``beat_predictions``: one dict per beat."""
    confidence = np.where(is_v, p_v, 1.0 - p_v)
    return [
        {"beat_index": i, "position_sample": pos, "arrhythmia_type": kind, "confidence": c,
         "rr_previous": rp, "rr_next": rn, "qrs_width_ms": q, "signal_quality": sq}
        for i, (pos, kind, c, rp, rn, q, sq) in enumerate(zip(
            beats.positions.tolist(),
            np.where(is_v, "V", "N").tolist(),
            np.round(confidence, 6).tolist(),
            _rounded_or_null(beats.rr_prev_s, 4),
            _rounded_or_null(beats.rr_next_s, 4),
            _rounded_or_null(beats.qrs_width_s * 1000.0, 1),
            np.asarray(QUALITY_LABELS)[beats.quality].tolist(),
        ))
    ]


def quality_summary(beats):
    """Beats per signal quality, and the stretches judged unreadable, in seconds of the signal."""
    counts = np.bincount(beats.quality, minlength=len(QUALITY_LABELS))
    intervals = np.round(beats.unreadable / MODEL_FS, 3)
    return {
        "signal_quality": dict(zip(QUALITY_LABELS, counts.tolist())),
        "unreadable_seconds": round(float(np.sum(intervals[:, 1] - intervals[:, 0])), 3),
        "unreadable_intervals_s": intervals.tolist(),
    }


def flutter_summary(beats):
    """The stretches that look like ventricular flutter or fibrillation (``ecg.flutter``), in
    seconds of the signal, and their total."""
    intervals = np.round(flutter_intervals(beats.filtered, MODEL_FS), 3)
    return {
        "ventricular_flutter_seconds": round(float(np.sum(intervals[:, 1] - intervals[:, 0])), 3),
        "ventricular_flutter_intervals_s": intervals.tolist(),
    }


# lead II and MIT-BIH's modified lead II (MLII: the limb electrodes on the torso) share the
# QRS morphology the network learned; devices and files spell the lead many ways
SAME_LEAD = {"II": "MLII", "ML2": "MLII", "MLII": "MLII"}


def lead_name(label):
    """A lead label as the model card names leads: upper case, without "ECG"/"EKG"/"LEAD" and
    spacing ("ECG II", "Lead-V1", "v1" -> "MLII", "V1", "V1")."""
    name = label.upper()
    for word in ("ECG", "EKG", "LEAD"):
        name = name.replace(word, "")
    name = "".join(ch for ch in name if ch.isalnum())
    return SAME_LEAD.get(name, name)


def lead_warning(model, derivation):
    """A warning when ``derivation`` is not a lead the model was trained on, else None."""
    trained = model.trained_leads
    if lead_name(derivation) in trained:
        return None
    return (f"derivation {derivation!r} is not among the leads the model was trained on "
            f"({', '.join(sorted(trained))}): beat labels may be less reliable")


# leads whose QRS complexes point up in most people: pointing down, the electrodes may be
# reversed (or the heart's axis far to the left: 3 of MIT-BIH's 46 MLII records, 117, 207 and 217,
# and ~5 % of its 10-s MLII strips); V1-like leads point down and are not in it
UPRIGHT_LEADS = frozenset({"MLII"})


def polarity_warning(label, qrs_direction):
    """A warning when a lead named ``label`` (``lead_name``) that points up in most people has
    QRS complexes that mostly point down (``qrs_direction`` -1.0), else None."""
    if qrs_direction > 0 or lead_name(label) not in UPRIGHT_LEADS:
        return None
    return (f"the QRS complexes of lead {label!r} mostly point down: reversed electrodes, another "
            "lead, or a heart axis far to the left?")


def turned_upright(model, qrs_direction):
    """Whether the networks saw the signal negated (``ecg.pipeline.upright_factor``)."""
    return upright_factor(qrs_direction, model.preprocessing_version) < 0


def dominant_calls(calls, features):
    """Beats (n,) of their pool's dominant on-time slow shape (``ecg.decision.dominant_rhythm_mask``)
    among ``calls`` (``ecg.decision.Calls``; without pooling, none); ``features`` (n, k): their RR features."""
    if calls.alike is None:
        return np.zeros(len(calls.is_v), bool)
    return dominant_rhythm_mask(calls.alike, calls.pools, features)


def short_rhythm_beats(is_v, dominant, runs):
    """``(count, beats)``: how many V calls are of the dominant on-time slow shape (``dominant``
    (n,), :func:`dominant_calls`) in the runs too short for the own-rhythm rule, counting a run
    when they are more than half its beats; and how many beats those runs hold.

    A run too short for that rule (``ecg.decision.own_rhythm_mask``: under 150 beats, a short
    request or a stretch between two leads off of a minute or more) keeps such calls V, as a slow
    ventricular rhythm would be; a longer one would call them N if they were the patient's own
    rhythm (record 214's V1 on 10-s strips). ``is_v`` (n,); ``runs`` (n,): each beat's run
    (``ecg.quality.lead_on_runs``), consecutive.
    """
    is_v, dominant, runs = np.asarray(is_v, bool), np.asarray(dominant, bool), np.asarray(runs)
    count = beats = 0
    for a, b in zip(*equal_spans(runs)):
        n, mostly_v = b - a, 2 * np.count_nonzero(is_v[a:b]) > b - a
        of_shape = int(np.count_nonzero(is_v[a:b] & dominant[a:b]))
        if MIN_RHYTHM_BEATS <= n < OWN_RHYTHM_MIN_BEATS and mostly_v and 2 * of_shape > n:
            count, beats = count + of_shape, beats + n
    return count, beats


def own_rhythm_warning(n_own_rhythm, pacemaker):
    """What to say of ``n_own_rhythm`` (> 0) beats the own-rhythm rule called N: paced beats when
    a pacemaker was declared, else the patient's own rhythm."""
    return (PACED_RHYTHM_WARNING if pacemaker else OWN_RHYTHM_WARNING).format(n_own_rhythm)


def build_result(model, beats, calls, x, fs, derivation, apply_ruleguard, pacemaker=False):
    """The response fields of :func:`predict` from classified beats (timed apart by the bench).

    ``calls``: the beats' ``ecg.decision.Calls``, classified with ``pacemaker`` declared or not.

    Unreadable beats are never V (:func:`ecg.decision.classify`), so ``ventricular_beats``
    leaves them out; the PVC burden is over the readable beats.
    """
    is_v, p_v, flipped, own_rhythm = calls.is_v, calls.p_v, calls.flipped, calls.own_rhythm
    n = len(beats)
    n_v = int(np.count_nonzero(is_v))
    is_readable = beats.quality != UNREADABLE
    readable = int(np.count_nonzero(is_readable))
    overall, overall_conf, risk = overall_call(is_v, p_v)
    # from the intervals between two readable beats: an unreadable stretch's are the noise's
    rr = beats.rr_prev_s[1:][is_readable[1:] & is_readable[:-1]]
    heart_rate = round(60.0 / float(median_1d(rr)), 1) if len(rr) else None
    quality = quality_summary(beats)
    flutter = flutter_summary(beats)

    warnings = [w for w in [lead_warning(model, derivation), polarity_warning(derivation, beats.qrs_direction)] if w]
    warnings += _quality_warnings(x, fs, n, heart_rate)
    if n >= 3 and median_1d(beats.features[:, TEMPLATE_CORR]) < MIN_TEMPLATE_CORR:
        warnings.append("the detected beats do not resemble one another: noise, or a very "
                        "poor signal? Beat labels are unreliable")
    if n - readable:
        warnings.append(f"{quality['unreadable_seconds']:.1f} s of the signal judged unreadable "
                        f"(noise): its {n - readable} beat(s) are not called V nor counted in the burden")
    if flutter["ventricular_flutter_seconds"]:
        warnings.append(FLUTTER_WARNING.format(flutter["ventricular_flutter_seconds"],
                                               flutter["ventricular_flutter_intervals_s"][0][0]))
    n_own_rhythm = int(np.count_nonzero(own_rhythm))
    if n_own_rhythm:
        warnings.append(own_rhythm_warning(n_own_rhythm, pacemaker))
    n_short_rhythm, n_in_short = short_rhythm_beats(is_v, dominant_calls(calls, beats.features), beats.runs)
    if n_short_rhythm:
        warnings.append(SHORT_RHYTHM_WARNING.format(n_short_rhythm, n_in_short))
    ruleguard_applied = bool(apply_ruleguard and (model.decision.get("ruleguard") or {}).get("enabled"))
    return {
        "overall_arrhythmia_type": overall,
        "overall_confidence": overall_conf,
        "risk_level": risk,
        "threshold_used": model.threshold,
        "total_beats": n,
        "normal_beats": n - n_v,
        "ventricular_beats": n_v,
        "beat_predictions": beat_list(beats, is_v, p_v),
        "metadata": {
            "total_beats": n,
            "normal_beats": n - n_v,
            "ventricular_beats": n_v,
            "ruleguard_applied": ruleguard_applied,
            "ruleguard_requested": bool(apply_ruleguard),
            "ruleguard_flipped_beats": int(np.count_nonzero(flipped)),
            "own_rhythm_beats": n_own_rhythm,
            "v_by_timing_beats": int(np.count_nonzero(calls.by_timing)),
            "v_without_pause_beats": int(np.count_nonzero(calls.no_pause)),
            "v_small_without_t_wave_beats": int(np.count_nonzero(calls.no_t_wave)),
            "short_rhythm_beats": n_short_rhythm,
            "pacemaker": bool(pacemaker),
            "turned_upright": turned_upright(model, beats.qrs_direction),
            "heart_rate_bpm": heart_rate,
            "pvc_burden_percent": round(100.0 * n_v / readable, 2) if readable else None,
            **quality,
            **flutter,
            "model_name": model.name,
            "model_version": model.version,
            "preprocessing_version": model.preprocessing_version,
            "derivation": derivation,
            "sampling_rate": fs,
            "model_sampling_rate": MODEL_FS,
            "resampled": fs != MODEL_FS,
            "n_samples": len(x),
            "duration_s": round(len(x) / fs, 3),
            "warnings": warnings,
        },
    }

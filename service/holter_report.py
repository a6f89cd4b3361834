"""The Holter report of an analysed recording, as JSON fields or as a CSV beat table.

The counts are ``ecg.holter``'s (defined there and in docs/HOLTER.md); this module
rounds them, adds the recording's identity, the model and the warnings.
"""

import io

import numpy as np

from ecg import holter
from ecg.quality import QUALITY_LABELS, UNREADABLE

from .holter import CLIPPED_WARNING_SHARE, MIN_PART_S
from .inference import (FLUTTER_WARNING, SHORT_RHYTHM_WARNING, lead_warning, own_rhythm_warning, polarity_warning,
                        turned_upright)

CSV_HEADER = "time_s,sample,type,confidence"


def _round(value, decimals):
    return None if value is None else round(float(value), decimals)


def report_fields(channel, result, model, include_beats=False):
    """The report's fields (no id, no timing) from ``service.holter.analyse``'s ``result``."""
    duration = channel.duration_s
    unreadable = result["unreadable_s"]
    # where beats may have gone unseen: no pause there
    unseen = np.concatenate([result[k] for k in ("unreadable_intervals_s", "flutter_intervals_s",
                                                 "disturbed_intervals_s")])
    summary = holter.holter_summary(result["times_s"], result["is_v"], duration,
                                    analysed_s=duration - result["gap_s"] - result["short_parts_s"] - unreadable,
                                    readable=result["quality"] != UNREADABLE, part=result["unbroken"], unseen=unseen,
                                    own_snr_db=result["own_snr_db"])
    hr = summary["heart_rate_bpm"]
    fields = {
        "channel": {"index": channel.index, "label": channel.label, "sampling_rate": channel.fs},
        "start_time": channel.start_time.isoformat() if channel.start_time else None,
        "duration_s": round(duration, 3),
        "total_beats": summary["total_beats"],
        "normal_beats": summary["normal_beats"],
        "ventricular_beats": summary["ventricular_beats"],
        "unreadable_beats": summary["unreadable_beats"],
        "own_rhythm_beats": int(np.count_nonzero(result["own_rhythm"])),
        "v_by_timing_beats": int(np.count_nonzero(result["by_timing"])),
        "v_without_pause_beats": int(np.count_nonzero(result["no_pause"])),
        "v_small_without_t_wave_beats": int(np.count_nonzero(result["no_t_wave"])),
        "short_rhythm_beats": result["short_rhythm_beats"],
        "pacemaker": result["pacemaker"],
        "turned_upright": turned_upright(model, result["qrs_direction"]),
        "pvc_burden_percent": round(summary["pvc_burden_percent"], 3),
        "pvc_per_hour": round(summary["pvc_per_hour"], 2),
        "heart_rate_bpm": {k: _round(hr[k], 1) for k in ("min", "mean", "max")},
        "isolated_pvcs": summary["isolated_pvcs"],
        "couplets": summary["couplets"],
        "triplets": summary["triplets"],
        "ventricular_runs": [{"start_s": round(r["start_s"], 3), "beats": r["beats"],
                              "duration_s": round(r["duration_s"], 3), "rate_bpm": round(r["rate_bpm"], 1),
                              "kind": r["kind"]} for r in summary["ventricular_runs"]],
        "pauses": [{"start_s": round(p["start_s"], 3), "duration_s": round(p["duration_s"], 3)}
                   for p in summary["pauses"]],
        "long_pauses": summary["long_pauses"],
        "longest_pause_s": _round(summary["longest_pause_s"], 3),
        "bigeminy_episodes": summary["bigeminy_episodes"],
        "trigeminy_episodes": summary["trigeminy_episodes"],
        "hourly": [{**row, "heart_rate_mean": _round(row["heart_rate_mean"], 1)} for row in summary["hourly"]],
        "unreadable_seconds": round(unreadable, 3),
        "unreadable_intervals_s": np.round(result["unreadable_intervals_s"], 3).tolist(),
        "ventricular_flutter_seconds": round(result["flutter_s"], 3),
        "ventricular_flutter_intervals_s": np.round(result["flutter_intervals_s"], 3).tolist(),
        "gap_seconds": round(result["gap_s"], 3),
        "gap_intervals_s": np.round(result["gap_intervals_s"], 3).tolist(),
        "model": {"name": model.name, "version": model.version},
        "warnings": report_warnings(channel, result, model),
    }
    if include_beats:
        fields["beats"] = [{"time_s": t, "sample": s, "type": k, "confidence": c, "signal_quality": q}
                           for t, s, k, c, q in zip(*_beat_columns(result), _quality_column(result))]
    return fields


def report_warnings(channel, result, model):
    """What the client should know about the channel and the beats found."""
    notes = list(channel.warnings)
    if (note := lead_warning(model, channel.label)) is not None:
        notes.append(f"channel {channel.label!r}: {note}")
    if (note := polarity_warning(channel.label, result["qrs_direction"])) is not None:
        notes.append(note)
    checks = result["checks"]
    share = checks["at_rails"] / max(checks["samples"], 1)
    if share > CLIPPED_WARNING_SHARE:
        notes.append(f"{100 * share:.1f}% of the samples sit at the channel's physical minimum or "
                     "maximum: clipped or saturated stretches?")
    unreadable = int(np.count_nonzero(result["quality"] == UNREADABLE))
    if unreadable:
        notes.append(f"{result['unreadable_s']:.0f} s of the recording judged unreadable (noise): its "
                     f"{unreadable} beat(s) are not called V nor counted in the burden")
    if result["short_parts_s"]:
        notes.append(f"{result['short_parts_s']:.1f} s of the recording, in continuous parts shorter than "
                     f"{MIN_PART_S:g} s between gaps, not analysed")
    if len(disturbed := result["disturbed_intervals_s"]):
        notes.append(f"{len(disturbed)} RR interval(s) of 2 s or more not counted as pauses: the baseline "
                     "moved by over 1 mV during them (a lead jumping or recovering), where beats may be hidden")
    if result["flutter_s"]:
        notes.append(FLUTTER_WARNING.format(result["flutter_s"], result["flutter_intervals_s"][0][0]))
    if own_rhythm := int(np.count_nonzero(result["own_rhythm"])):
        notes.append(own_rhythm_warning(own_rhythm, result["pacemaker"]))
    n = len(result["is_v"])
    if result["short_rhythm_beats"]:
        notes.append(SHORT_RHYTHM_WARNING.format(result["short_rhythm_beats"], result["short_rhythm_of"]))
    if n < 3:
        notes.append(f"only {n} beat(s) detected in {channel.duration_s:.0f} s")
    return notes


def _beat_columns(result):
    """(time_s, sample, type, confidence) lists, rounded as the report gives them."""
    is_v = result["is_v"]
    confidence = np.where(is_v, result["p_v"], 1.0 - result["p_v"])
    return (np.round(result["times_s"], 4).tolist(), result["positions"].tolist(),
            np.where(is_v, "V", "N").tolist(), np.round(confidence, 6).tolist())


def _quality_column(result):
    return np.asarray(QUALITY_LABELS)[result["quality"]].tolist()


def beats_csv(result):
    """The beat table as CSV text: ``time_s,sample,type,confidence``, one row per beat."""
    out = io.StringIO()
    out.write(CSV_HEADER + "\n")
    out.writelines(f"{t},{s},{k},{c}\n" for t, s, k, c in zip(*_beat_columns(result)))
    return out.getvalue()

"""``python -m bench.compare BEFORE AFTER``: two reports of ``bench.robustness`` or
``bench.out_of_fold``, condition by condition.

What a rule or a model changed. For each condition both reports hold, whole records and strips:
F1 of V before and after, the PVCs found (V beats called V) and the false V (non-V beats and
artefacts called V) it added, and the false-V rate; then, per mode, the mean change of F1 of V, the
lowest, and how many conditions rose and fell: what a bar written before a run asks. ``--records``
also names, in each cell, the records whose PVCs found or false V changed (reports that keep each
record's counts: ``bench.robustness.record_counts``). A missing or unreadable report: one line on
stderr, exit 2.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

from bench.robustness import MODES, false_v_count


class CellChange(NamedTuple):
    """What changed in one condition and mode between two reports."""

    condition: str
    mode: str
    f1_before: float
    f1_after: float
    pvcs_added: int  # V beats called V
    false_v_added: int  # non-V beats and artefacts called V
    rate_before: float  # the false-V rate, per cent of the beats
    rate_after: float


def cell_changes(before, after):
    """A :class:`CellChange` per condition both reports hold and mode."""
    rows = []
    for name, res in after["conditions"].items():
        if name not in before["conditions"]:
            continue
        for mode in MODES:
            a, b = before["conditions"][name][mode]["all"], res[mode]["all"]
            rows.append(CellChange(name, mode, a["v_f1"], b["v_f1"], b["V_TP"] - a["V_TP"],
                                   false_v_count(b) - false_v_count(a), 100 * a["false_v_rate"],
                                   100 * b["false_v_rate"]))
    return rows


def mode_summary(rows, mode):
    """``{"conditions", "mean", "lowest", "up", "down", "pvcs", "false_v"}`` of ``rows``' ``mode``
    (None when it has none)."""
    cells = [r for r in rows if r.mode == mode]
    if not cells:
        return None
    diffs = [r.f1_after - r.f1_before for r in cells]
    return {"conditions": len(cells), "mean": sum(diffs) / len(cells), "lowest": min(diffs),
            "up": sum(d > 0 for d in diffs), "down": sum(d < 0 for d in diffs),
            "pvcs": sum(r.pvcs_added for r in cells), "false_v": sum(r.false_v_added for r in cells)}


def record_changes(before, after, name, mode):
    """``[(record, pvcs_added, false_v_added)]`` where either changed; [] when a report keeps no
    record's counts for the cell."""
    a = before["conditions"][name][mode].get("records") or {}
    b = after["conditions"][name][mode].get("records") or {}
    out = [(rec, b[rec]["V_TP"] - a[rec]["V_TP"], b[rec]["false_v"] - a[rec]["false_v"]) for rec in b if rec in a]
    return [c for c in out if c[1] or c[2]]


def load(path):
    report = json.loads(Path(path).read_text())
    if not isinstance(report, dict) or not isinstance(report.get("conditions"), dict):
        raise ValueError(f"{path}: not a report of bench.robustness or bench.out_of_fold (no conditions)")
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--records", action="store_true", help="name the records whose counts changed in each cell")
    args = ap.parse_args(argv)
    try:
        before, after = load(args.before), load(args.after)
        rows = cell_changes(before, after)
    except (OSError, ValueError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as exc:
        print(f"compare: not a report of bench.robustness or bench.out_of_fold ({exc!r})", file=sys.stderr)
        return 2
    for name, mode, f1_a, f1_b, pvcs, false_v, rate_a, rate_b in rows:
        print(f"{name:24s} {mode:6s} F1 of V {f1_a:.4f} -> {f1_b:.4f} ({f1_b - f1_a:+.4f}), PVCs {pvcs:+d}, "
              f"false V {false_v:+d} ({rate_a:.2f} -> {rate_b:.2f} %)")
        if args.records:
            for rec, d_pvcs, d_false_v in record_changes(before, after, name, mode):
                print(f"    {rec}: PVCs {d_pvcs:+d}, false V {d_false_v:+d}")
    for mode in MODES:
        s = mode_summary(rows, mode)
        if s:
            print(f"{mode}: {s['conditions']} conditions, F1 of V mean {s['mean']:+.5f}, lowest {s['lowest']:+.4f}, "
                  f"{s['up']} up, {s['down']} down; PVCs {s['pvcs']:+d}, false V {s['false_v']:+d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

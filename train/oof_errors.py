"""Where a run loses V beats on DS1: its out-of-fold errors by record and by run length.

``python -m train.oof_errors RUN_ID`` reads the run's ``evaluation/nested_oof.npz`` (a
``--nested-oof`` run: every DS1 beat scored by inner ensembles that never saw its record),
applies the decision of the run's card (calibration, threshold, RuleGuard) to the members'
mean, and prints:

- TP, FP, FN and F1 of V per record, worst first;
- the recall of V beats by the length of the run of V beats they are in (alone, couplets,
  runs of 3-9, 10 or more);
- an upper bound: F1 with a threshold per record chosen with that record's labels.

DS1 only: it reads nothing of DS2, so what it shows can steer the next experiment.
"""

import argparse
import tempfile

import numpy as np

from ecg.decision import calibrate, classify
from ecg.ec57 import f1_from_counts

RUN_BINS = ((1, 1), (2, 2), (3, 9), (10, None))  # run lengths reported (None: no upper end)
ORACLE_THRESHOLDS = np.linspace(0.01, 0.99, 99)


def per_record(is_v, y, records):
    """Rows ``(record, n_V, TP, FP, FN, F1)``, most errors first. All inputs (n,)."""
    rows = []
    for r in np.unique(records):
        m = records == r
        tp, fp, fn = (int(np.sum(a)) for a in (is_v[m] & y[m], is_v[m] & ~y[m], ~is_v[m] & y[m]))
        rows.append((str(r), int(y[m].sum()), tp, fp, fn, f1_from_counts(tp, fp, fn)))
    return sorted(rows, key=lambda row: -(row[3] + row[4]))


def run_lengths(y, records):
    """For each beat (n,), the length of the run of consecutive V beats it is in (0 for non-V).

    ``y``: bool (n,), beats in signal order; a run never crosses from one record to the next.
    """
    y = np.asarray(y, bool)
    out = np.zeros(len(y), np.int64)
    start = np.flatnonzero(y & ~np.r_[False, y[:-1] & (records[1:] == records[:-1])])
    for s in start:
        e = s + 1
        while e < len(y) and y[e] and records[e] == records[s]:
            e += 1
        out[s:e] = e - s
    return out


def recall_by_run_length(is_v, y, records, bins=RUN_BINS):
    """Rows ``(label, V beats, recall)`` for each (low, high) run-length bin."""
    length = run_lengths(y, records)
    rows = []
    for low, high in bins:
        m = (length >= low) & (length <= (high if high is not None else len(y)))
        label = f"{low}" if low == high else f"{low}+" if high is None else f"{low}-{high}"
        rows.append((label, int(m.sum()), float(is_v[m].mean()) if m.any() else float("nan")))
    return rows


def oracle_per_record(p_v, y, records, grid=ORACLE_THRESHOLDS):
    """F1 of V when each record gets the threshold (on ``p_v``, (n,)) best for its own labels.

    Not a method: an upper bound on what adapting the decision to the patient could give.
    """
    tp = fp = fn = 0
    for r in np.unique(records):
        m = records == r
        best = None
        for t in grid:
            pred = p_v[m] >= t
            counts = (int(np.sum(pred & y[m])), int(np.sum(pred & ~y[m])), int(np.sum(~pred & y[m])))
            # the record's own errors: the fewest wins (F1 of a record with no V is undefined)
            if best is None or counts[1] + counts[2] < best[1] + best[2]:
                best = counts
        tp, fp, fn = tp + best[0], fp + best[1], fn + best[2]
    return f1_from_counts(tp, fp, fn)


def report(oof, decision):
    """The printed report of one run's out-of-fold evidence (a dict from train.nested.load_oof)."""
    p_raw = oof["p_members"].astype(np.float64).mean(axis=1)
    y, records, feats = oof["y"].astype(bool), np.asarray(oof["records"]), oof["features"]
    is_v = classify(p_raw, feats, decision).is_v
    tp, fp, fn = int(np.sum(is_v & y)), int(np.sum(is_v & ~y)), int(np.sum(~is_v & y))
    lines = [f"{len(y)} DS1 beats, {int(y.sum())} V: TP {tp} FP {fp} FN {fn}, F1 of V {f1_from_counts(tp, fp, fn):.4f}",
             "", "record      V     TP     FP     FN     F1"]
    lines += [f"{r:>6} {nv:6d} {a:6d} {b:6d} {c:6d} {f:6.3f}" for r, nv, a, b, c, f in per_record(is_v, y, records)]
    lines += ["", "run of V beats   V beats   recall"]
    lines += [f"{label:>14} {n:9d} {rec:8.3f}" for label, n, rec in recall_by_run_length(is_v, y, records)]
    bound = oracle_per_record(calibrate(p_raw, decision["calibration"]), y, records)
    lines += ["", f"upper bound, a threshold per record chosen with its labels: F1 of V {bound:.4f}"]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.oof_errors", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_id", help="a finished --nested-oof run")
    args = ap.parse_args(argv)
    from . import tracking
    from .nested import check_oof_runs, load_oof

    check_oof_runs([args.run_id])
    with tempfile.TemporaryDirectory() as tmp:
        oof = load_oof(args.run_id, tmp)
        decision = tracking.load_run_card(args.run_id, tmp)["decision"]
    print(report(oof, decision))
    return 0


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli("python -m train.oof_errors", main))

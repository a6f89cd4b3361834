"""One label per morphology within a strip or a whole signal: its tests on DS1 and the setting
the service uses.

``python -m train.pooling RUN_ID [RUN_ID ...] --data DIR [--signal-wide] --out pooling.json``

The runs must be ``--nested-oof`` runs (their ``evaluation/nested_oof.npz``: every DS1 beat
scored by inner ensembles that never saw its record); the first is the run to serve.

1. The test set down before it ran (docs/MODEL.md, "The morphology pool"): 5-fold
   cross-validation over DS1 by record (fold k: sorted DS1 records k, k+5, ...). On four folds
   the grouping (each beat's alike neighbours, as served, or connected components of the
   alike relation), the correlation bound, the weight of the beat's own logit and the
   threshold are chosen; the fifth is scored. The baseline is the run's decision with its
   threshold re-tuned the same way; RuleGuard as in the card after both. It passes if the
   pooled cross-validated F1 of V rises by at least ``MIN_GAIN`` on every run.
2. The served setting: :func:`ecg.decision.pool_by_morphology` (alike neighbours), its bound,
   own weight and threshold chosen on the first run's out-of-fold predictions, all of DS1.
   With ``--signal-wide`` (the served pool) the pool is a record's whole signal
   (``pool_size_beats``) instead of its groups of ~16 beats, its bound chosen over
   ``SIGNAL_BOUNDS``; the record-wide cross-validation runs first, as a check.

``convert.promote --pooling pooling.json`` writes it into the card. DS2 is never read here.
"""

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ecg.decision import logit, pool_by_morphology, pooling_logit, qrs_shapes, ruleguard_mask
from ecg.ec57 import f1_from_counts
from ecg.features import groups_within
from ecg.pipeline import QRS_CORE_SAMPLES as CORE_SAMPLES

from .data import DS1

BOUNDS = (0.85, 0.90, 0.95)
OWN_WEIGHTS = (0.0, 0.5)
GROUPINGS = ("neighbours", "components")
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)
MIN_GAIN = 0.010
MIN_GAIN_RECORD_WIDE = 0.005  # the second test's bar: the record-wide pool against the group-wide one
# the signal-wide pool as served: a signal's beats in runs of about this many (one pool for
# every MIT-BIH record), its bound chosen over these (0.97: every fold chose the old edge, 0.95)
POOL_SIZE_BEATS = 4096
SIGNAL_BOUNDS = BOUNDS + (0.97,)
N_FOLDS = 5


def components_pooled(logits, windows, groups, min_corr, own_weight):
    """The study's other grouping: each beat takes the mean logit of its connected component
    of the "alike" relation (chains of beats alike two by two). Not served."""
    core = qrs_shapes(windows, CORE_SAMPLES)
    out = np.empty_like(logits)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        alike = (core[idx] @ core[idx].T) >= min_corr
        np.fill_diagonal(alike, True)
        label, n = -np.ones(len(idx), int), 0
        for i in range(len(idx)):
            if label[i] >= 0:
                continue
            stack, label[i] = [i], n
            while stack:
                for m in np.flatnonzero(alike[stack.pop()] & (label < 0)):
                    label[m] = n
                    stack.append(m)
            n += 1
        x = logits[idx]
        out[idx] = own_weight * x + (1 - own_weight) * (np.bincount(label, weights=x) / np.bincount(label))[label]
    return out


def pooled(logits, windows, groups, grouping, min_corr, own_weight):
    if grouping == "neighbours":
        return pool_by_morphology(logits, windows, groups, {"min_corr": min_corr, "own_weight": own_weight,
                                                             "core_samples": list(CORE_SAMPLES)})[0]
    return components_pooled(logits, windows, groups, min_corr, own_weight)


def aligned_evidence(run_id, val, tmp):
    """The run's out-of-fold evidence with the DS1 beats' windows and groups, in the npz's order."""
    from .nested import load_oof
    from .tracking import load_run_card

    oof = load_oof(run_id, tmp)
    order = np.concatenate([np.flatnonzero(val.records == r) for r in dict.fromkeys(oof["records"].tolist())])
    same = np.array_equal(val.records[order], oof["records"]) and np.array_equal(val.features[order], oof["features"])
    if not same:
        raise SystemExit(f"run {run_id}: its out-of-fold beats are not the DS1 beats built here "
                         "(another preprocessing version?)")
    decision = load_run_card(run_id, tmp)["decision"]
    groups = val.groups()
    return {"y": oof["y"].astype(bool), "records": oof["records"], "features": oof["features"],
            "windows": val.windows[order], "groups": groups[order],
            "logits": pooling_logit(oof["p_members"].astype(np.float64).mean(axis=1), decision["calibration"]),
            "decision": decision}


def _guard(ev):
    """The beats (n,) the card's RuleGuard turns back to N, applied after every decision here."""
    rule = ev["decision"].get("ruleguard") or {}
    return ruleguard_mask(ev["features"], rule) if rule.get("enabled") else np.zeros(len(ev["y"]), bool)


def _folds(ev):
    """The 5 folds (masks over the evidence's beats) of DS1's sorted records, k, k+5, ..."""
    records = sorted(DS1)
    return [np.isin(ev["records"], records[k::N_FOLDS]) for k in range(N_FOLDS)]


def _nested_choice(table, candidates):
    """For each fold, the (setting, threshold) of ``candidates`` (keys of ``table``, counts by
    fold) best on the four others, scored on it. Returns (F1 of V, TP/FP/FN totals, choices)."""
    total, chosen = np.zeros(3), []
    for k in range(N_FOLDS):
        rest = [j for j in range(N_FOLDS) if j != k]
        best = max(candidates, key=lambda kt: f1_from_counts(*table[kt][rest].sum(axis=0)))
        total += table[best][k]
        chosen.append([*best[0], float(best[1])])
    return f1_from_counts(*total), total, chosen


def _counts_by_fold(score, ev, folds, threshold, guard):
    pred = (score >= logit(threshold)) & ~guard
    y = ev["y"]
    return np.array([[np.sum(pred[f] & y[f]), np.sum(pred[f] & ~y[f]), np.sum(~pred[f] & y[f])] for f in folds])


def cross_validated(ev, groupings=GROUPINGS):
    """The pre-registered test on one run: {"baseline": ..., "pooled": ..., "gain": ...}."""
    folds, guard = _folds(ev), _guard(ev)
    settings = {("none",): ev["logits"]}
    for grouping, bound, own in itertools.product(groupings, BOUNDS, OWN_WEIGHTS):
        settings[(grouping, bound, own)] = pooled(ev["logits"], ev["windows"], ev["groups"], grouping, bound, own)
    table = {(key, t): _counts_by_fold(score, ev, folds, t, guard)
             for key, score in settings.items() for t in THRESHOLDS}
    out = {}
    for label, keys in (("baseline", [("none",)]), ("pooled", [k for k in settings if k != ("none",)])):
        f1, total, chosen = _nested_choice(table, [(key, t) for key in keys for t in THRESHOLDS])
        out[label] = {"cv_f1_V": f1, "tp_fp_fn": total.astype(int).tolist(), "chosen": chosen}
    out["gain"] = out["pooled"]["cv_f1_V"] - out["baseline"]["cv_f1_V"]
    return out


def record_pools(records):
    """The signal-wide pools of the evidence (n,): each record's beats (one run in the
    evidence, its 10-s strips joined) in runs of about ``POOL_SIZE_BEATS``."""
    return groups_within(records, POOL_SIZE_BEATS)


def cross_validated_record_wide(ev, bounds=BOUNDS):
    """The second test (the record-wide pool): the cross-validated F1 of V of the served
    grouping with its pool over the group (as served) or, as one more choice, over the whole
    record. Returns (group-wide F1, F1 with the choice, the folds' choices)."""
    folds, guard = _folds(ev), _guard(ev)
    table = {}
    for unit, groups in (("group", ev["groups"]), ("record", record_pools(ev["records"]))):
        for bound, own in itertools.product(bounds, OWN_WEIGHTS):
            score = pooled(ev["logits"], ev["windows"], groups, "neighbours", bound, own)
            for t in THRESHOLDS:
                table[((unit, bound, own), t)] = _counts_by_fold(score, ev, folds, t, guard)
    group, _, _ = _nested_choice(table, [kt for kt in table if kt[0][0] == "group"])
    either, _, chosen = _nested_choice(table, list(table))
    return group, either, chosen


def served_setting(ev, signal_wide=False):
    """Bound, own weight and threshold of the served grouping, best F1 of V on all of ``ev``:
    pooled within the groups of ~16 beats, or with ``signal_wide`` within each record."""
    guard = _guard(ev)
    pools = record_pools(ev["records"]) if signal_wide else ev["groups"]
    best = None
    for bound, own in itertools.product(SIGNAL_BOUNDS if signal_wide else BOUNDS, OWN_WEIGHTS):
        score = pooled(ev["logits"], ev["windows"], pools, "neighbours", bound, own)
        for t in THRESHOLDS:
            tp, fp, fn = _counts_by_fold(score, ev, [np.ones(len(score), bool)], t, guard)[0]
            f1 = f1_from_counts(tp, fp, fn)
            if best is None or f1 > best["val_f1_V"] + 1e-12:
                best = {"min_corr": bound, "own_weight": own, "threshold": float(t), "val_f1_V": f1}
    if signal_wide:
        best["pool_size_beats"] = POOL_SIZE_BEATS
    base = max(f1_from_counts(*_counts_by_fold(ev["logits"], ev, [np.ones(len(ev["y"]), bool)], t, guard)[0])
               for t in THRESHOLDS)
    return {**best, "val_f1_V_without": base}


def pooling_card(setting):
    """The card's ``decision.pooling`` (without ``chosen_on``) of :func:`served_setting`'s output."""
    out = {"min_corr": setting["min_corr"], "own_weight": setting["own_weight"], "core_samples": list(CORE_SAMPLES)}
    if "pool_size_beats" in setting:
        out["pool_size_beats"] = setting["pool_size_beats"]
    return out


def ds2_figures(run_id, setting, data=None, cache="cache"):
    """DS2 F1 of V (Se, +P) of a run's whole ensemble with and without ``setting``'s pooling,
    on reference beats, end to end and on 10-s strips (:func:`train.evaluate.score_ds2`):
    read only after the decision, to report what it gives on the test patients.
    ``setting``: :func:`served_setting`'s output. Returns {"<evaluation>_<without|pooled>":
    [F1, Se, +P]}."""
    from .data import DS2, data_dir
    from .evaluate import DS2_EVALUATIONS, decide, predict_raw, score_ds2
    from .tracking import load_run_model

    ddir = data_dir(data)
    with tempfile.TemporaryDirectory() as tmp:
        model, card = load_run_model(run_id, tmp)
    plain = card["decision"]
    decisions = {"without": plain,
                 "pooled": {**plain, "threshold": setting["threshold"], "pooling": pooling_card(setting)}}

    def label(beats, evaluation):
        p_raw = predict_raw(model, beats)
        return {name: decide(p_raw, beats, decision) for name, decision in decisions.items()}

    metrics, _ = score_ds2(label, list(DS2), ddir, 10.0, cache_dir=cache or None)
    return {f"{tag}_{name}": [metrics[name][f"{tag}_{k}"] for k in ("f1_V", "recall_V", "precision_V")]
            for tag in DS2_EVALUATIONS for name in decisions}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.pooling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="--nested-oof runs; the first is the run to serve")
    ap.add_argument("--data", help="MIT-BIH directory (default: $ECG_DATA_DIR)")
    ap.add_argument("--out", default="pooling.json")
    ap.add_argument("--record-wide", action="store_true",
                    help="only the second test: a pool over the whole record as one more choice (DS1)")
    ap.add_argument("--signal-wide", action="store_true",
                    help="the served setting pools a request's whole signal (docs/MODEL.md); the "
                         "record-wide cross-validation on its grid runs first, as a check")
    ap.add_argument("--ds2", action="store_true",
                    help="after the decision, each run's DS2 figures with the setting chosen on its own DS1 "
                         "predictions")
    return ap.parse_args(argv)


def record_wide_test(runs, evidence):
    """``--record-wide``: the second test alone, printed; returns whether it passed."""
    passed = True
    for run, ev in zip(runs, evidence):
        group, either, chosen = cross_validated_record_wide(ev)
        passed &= either - group >= MIN_GAIN_RECORD_WIDE
        print(f"{run[:8]}: cross-validated F1 of V, group-wide {group:.4f}, with the record-wide pool "
              f"as a choice {either:.4f} ({either - group:+.4f}); the folds chose {chosen}", flush=True)
    print(f"test (gain >= {MIN_GAIN_RECORD_WIDE} on every run): {'passed' if passed else 'FAILED'}")
    return passed


def run_tests(runs, evidence, signal_wide):
    """The test (or with ``signal_wide`` the check) on every run, printed: ({run: result}, passed)."""
    tests = {}
    for run, ev in zip(runs, evidence):
        if signal_wide:
            group, either, chosen = cross_validated_record_wide(ev, SIGNAL_BOUNDS)
            tests[run] = {"cv_f1_V": [group, either], "gain": either - group, "chosen": chosen}
            print(f"{run[:8]}: bounds {SIGNAL_BOUNDS}: cross-validated F1 of V, group-wide {group:.4f}, with the "
                  f"record-wide pool as a choice {either:.4f} ({either - group:+.4f}); the folds chose {chosen}",
                  flush=True)
        else:
            r = cross_validated(ev)
            tests[run] = {"cv_f1_V": [r["baseline"]["cv_f1_V"], r["pooled"]["cv_f1_V"]], "gain": r["gain"]}
            print(f"{run[:8]}: cross-validated F1 of V {r['baseline']['cv_f1_V']:.4f} -> {r['pooled']['cv_f1_V']:.4f} "
                  f"({r['gain']:+.4f}); TP/FP/FN {r['baseline']['tp_fp_fn']} -> {r['pooled']['tp_fp_fn']}", flush=True)
    bar = MIN_GAIN_RECORD_WIDE if signal_wide else MIN_GAIN
    passed = all(r["gain"] >= bar for r in tests.values())
    print(f"{'check' if signal_wide else 'test'} (gain >= {bar} on every run): {'passed' if passed else 'FAILED'}")
    return tests, passed


def print_ds2(runs, evidence, signal_wide, data):
    """``--ds2``: each run's DS2 figures with the setting chosen on its own DS1 predictions."""
    for run, ev in zip(runs, evidence):
        own = served_setting(ev, signal_wide)
        figures = ds2_figures(run, own, data)
        print(f"{run[:8]} (alike at {own['min_corr']}, own weight {own['own_weight']}, threshold "
              f"{own['threshold']}; DS1 {own['val_f1_V_without']:.4f} -> {own['val_f1_V']:.4f}), DS2 F1 / Se / +P "
              "of V without -> with the pooling: " + "; ".join(
                  f"{tag} " + "/".join(f"{v:.3f}" for v in figures[f"{tag}_without"]) + " -> "
                  + "/".join(f"{v:.3f}" for v in figures[f"{tag}_pooled"]) for tag in ("test", "e2e", "e2e_strip")),
              flush=True)


def main(argv=None):
    args = parse_args(argv)
    from . import dataset
    from .nested import check_oof_runs

    check_oof_runs(args.runs)
    val = dataset.build(sorted(DS1), args.data, 10.0, (0.0,), progress=None)
    with tempfile.TemporaryDirectory() as tmp:
        evidence = [aligned_evidence(run, val, tmp) for run in args.runs]
    if args.record_wide:
        record_wide_test(args.runs, evidence)
        return 0
    tests, passed = run_tests(args.runs, evidence, args.signal_wide)
    if not passed:
        return 1
    setting = served_setting(evidence[0], args.signal_wide)
    out = {**pooling_card(setting), "threshold": setting["threshold"],
           "chosen_on": {"run": args.runs[0], "val_f1_V_nested": setting["val_f1_V"],
                         "val_f1_V_nested_without": setting["val_f1_V_without"],
                         "test": {run[:8]: r for run, r in tests.items()}}}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"served: {'signal' if args.signal_wide else 'group'}-wide pool, alike at {setting['min_corr']}, "
          f"own weight {setting['own_weight']}, threshold "
          f"{setting['threshold']}: DS1 out-of-fold F1 of V {setting['val_f1_V_without']:.4f} -> "
          f"{setting['val_f1_V']:.4f}; wrote {args.out}")
    if args.ds2:
        print_ds2(args.runs, evidence, args.signal_wide, args.data)
    return 0


if __name__ == "__main__":
    from .cli import run_cli

    sys.exit(run_cli("python -m train.pooling", main))

"""``python -m train.cascade RUN_ID ...``: choose the band of the served cascade on DS1.

The served ensemble averages 5 networks, so every beat costs 5 networks of CPU (issue 5).
Most beats are not close calls: a cascade runs the first member on every beat and the
other members only on beats whose first-member probability falls inside a band around
the decision threshold; the others keep the first member's probability.

Whether that changes decisions can only be measured on ensemble predictions of patients
no member has seen: the ``--nested-oof`` runs' ``evaluation/nested_oof.npz`` (an inner
ensemble per outer DS1 fold, each member's out-of-fold probability). Per run, the
decision is tuned on the inner ensembles' mean, as the served decision is tuned on the
ensemble, then applied to the full ensemble and to each cascade. The band is expressed
in logits around the raw threshold, ``-below < logit(p_first) - logit(t_raw) < above``,
so it carries over to a model whose calibration differs.

The rule, written down before the study runs were read: among the bands whose pooled
label changes are at most ``--max-changed`` (0.5 %) of the beats either model calls V,
and whose mean F1 of V over the runs is at most ``--max-f1-loss`` (0.002) below the full
ensemble's, take the one that sends the fewest beats to the other members.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ecg.decision import classify, in_cascade_band, logit
from ecg.dsp import expit
from ecg.ec57 import binary_metrics

BELOW = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # logits under the raw threshold
ABOVE = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # logits over it


def raw_threshold_logit(decision):
    """logit of the raw probability at which the calibrated one reaches the threshold."""
    cal = decision["calibration"]
    return float((logit(decision["threshold"]) - cal.get("b", 0.0)) / cal.get("a", 1.0))


def band(decision, below, above):
    """``(low, high)`` raw-probability bounds of the band for this decision."""
    t = raw_threshold_logit(decision)
    return float(expit(t - below)), float(expit(t + above))


def cascade_p(p_first, p_members, low, high):
    """What the served cascade computes: (p (n,), sent (n,) bool to the other members).

    ``p_first`` (n,) the first member's probability; ``p_members`` (n, m) every member's,
    the first included (its mean is the full ensemble's).
    """
    sent = in_cascade_band(p_first, {"low": low, "high": high})
    return np.where(sent, p_members.mean(axis=1), p_first), sent


def f1_v(is_v, y):
    return binary_metrics(y == 1, is_v, positive=True)["F1"]


def study(oofs, below_grid=BELOW, above_grid=ABOVE):
    """One row per band: pooled share sent, label changes, F1 of V per run (full and cascade).

    ``oofs``: dicts with ``p_members`` (n, m), ``y`` (n,), ``features`` (n, k), one per run.
    """
    from .evaluate import tune_decision

    runs = []
    for o in oofs:
        p_full = o["p_members"].mean(axis=1)
        decision, _ = tune_decision(p_full, o["y"], o["features"])
        runs.append((o, decision, classify(p_full, o["features"], decision).is_v))
    rows = []
    for below in below_grid:
        for above in above_grid:
            sent = changed = either_v = 0
            n = 0
            f1_full, f1_casc = [], []
            for o, decision, full_v in runs:
                low, high = band(decision, below, above)
                p, s = cascade_p(o["p_members"][:, 0], o["p_members"], low, high)
                casc_v = classify(p, o["features"], decision).is_v
                sent, n = sent + int(s.sum()), n + len(p)
                changed += int(np.sum(casc_v != full_v))
                either_v += int(np.sum(casc_v | full_v))
                f1_full.append(f1_v(full_v, o["y"]))
                f1_casc.append(f1_v(casc_v, o["y"]))
            rows.append({"below": below, "above": above, "sent": sent / n, "changed": changed,
                         "changed_share_of_v": changed / max(either_v, 1),
                         "f1_full": f1_full, "f1_cascade": f1_casc,
                         "f1_change": float(np.mean(f1_casc) - np.mean(f1_full))})
    return rows


def choose(rows, max_changed=0.005, max_f1_loss=0.002):
    """The pre-registered rule (module docstring): the cheapest admissible band, or None."""
    ok = [r for r in rows if r["changed_share_of_v"] <= max_changed and r["f1_change"] >= -max_f1_loss]
    return min(ok, key=lambda r: (r["sent"], r["changed"])) if ok else None


def ds2_figures(run_id, chosen, data=None, cache="cache", records=None):
    """DS2 F1 of V of a run's ensemble, whole and as the cascade ``chosen`` defines: read
    only after the band is chosen, to report what the cascade costs on the test patients.

    The three evaluations of a training run (:func:`train.evaluate.score_ds2`), with the
    run's decision. Returns {evaluation: {"full", "cascade", "sent"}}.
    """
    import tempfile

    from .data import DS2, data_dir
    from .evaluate import DS2_EVALUATIONS, decide, predict_raw, score_ds2
    from .model import ensemble_members
    from .tracking import load_run_model

    ddir = data_dir(data)
    records = list(records or DS2)
    with tempfile.TemporaryDirectory() as tmp:
        model, card = load_run_model(run_id, tmp)
    decision = card["decision"]
    members = ensemble_members(model)
    low, high = band(decision, chosen["below_logit"], chosen["above_logit"])
    sent = {}

    def label(beats, evaluation):
        p_members = np.stack([predict_raw(m, beats) for m in members], axis=1)
        p_casc, sent[evaluation] = cascade_p(p_members[:, 0], p_members, low, high)
        return {"full": decide(p_members.mean(axis=1), beats, decision), "cascade": decide(p_casc, beats, decision)}

    metrics, _ = score_ds2(label, records, ddir, 10.0, cache_dir=cache or None)
    return {tag: {"sent": float(sent[tag].mean()), "full": metrics["full"][f"{tag}_f1_V"],
                  "cascade": metrics["cascade"][f"{tag}_f1_V"]} for tag in DS2_EVALUATIONS}


def main(argv=None):
    import tempfile

    from .nested import check_oof_runs, load_oof

    ap = argparse.ArgumentParser(prog="python -m train.cascade", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="MLflow run ids of --nested-oof runs (different seeds)")
    ap.add_argument("--max-changed", type=float, default=0.005)
    ap.add_argument("--max-f1-loss", type=float, default=0.002)
    ap.add_argument("--out", default="cascade.json", help="the chosen band, for convert.promote --cascade")
    ap.add_argument("--ds2", nargs="*", metavar="RUN",
                    help="after choosing: DS2 F1 of V of these runs (default: the study's runs), whole "
                         "ensemble and cascade (needs TensorFlow)")
    ap.add_argument("--data", help="MIT-BIH directory for --ds2 (default: $ECG_DATA_DIR, ...)")
    args = ap.parse_args(argv)
    check_oof_runs(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        oofs = [load_oof(run_id, Path(tmp) / run_id) for run_id in args.runs]
    rows = study(oofs)
    print(f"{'below':>5} {'above':>5} {'sent':>7} {'changed':>7} {'of V':>6} {'F1 change':>9}  "
          "F1 full / cascade per run")
    for r in rows:
        per_run = "  ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(r["f1_full"], r["f1_cascade"]))
        print(f"{r['below']:5.0f} {r['above']:5.0f} {r['sent']:7.2%} {r['changed']:7d} {r['changed_share_of_v']:6.2%} "
              f"{r['f1_change']:+9.4f}  {per_run}")
    best = choose(rows, args.max_changed, args.max_f1_loss)
    if best is None:
        print("no band meets the rule: serve the whole ensemble", file=sys.stderr)
        return 1
    out = {"below_logit": best["below"], "above_logit": best["above"], "study_runs": args.runs,
           "rule": {"max_changed_share_of_v": args.max_changed, "max_f1_loss": args.max_f1_loss},
           "ds1_nested_oof": {k: best[k] for k in ("sent", "changed", "changed_share_of_v", "f1_full",
                                                   "f1_cascade", "f1_change")},
           "beats": int(sum(len(o["y"]) for o in oofs))}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"chosen: below {best['below']:g}, above {best['above']:g} logits; {best['sent']:.2%} of beats "
          f"to the other members; F1 change {best['f1_change']:+.4f}; wrote {args.out}")
    if args.ds2 is not None:
        ds2_runs = args.ds2 or args.runs
        print("DS2 F1 of V, whole ensemble / cascade (share of beats sent to the other members):")
        for run_id in ds2_runs:
            figures = ds2_figures(run_id, out, args.data)
            print(f"  {run_id}: " + "; ".join(f"{tag} {r['full']:.4f} / {r['cascade']:.4f} ({r['sent']:.1%})"
                                              for tag, r in figures.items()), flush=True)
    return 0


if __name__ == "__main__":
    from .cli import run_cli

    sys.exit(run_cli("python -m train.cascade", main))

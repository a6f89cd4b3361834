"""``python -m bench.out_of_fold``: DS1 through the served path, each record's V probability
from the ensemble member that never trained on it.

The served model averages one network per DS1 fold (the card's ``data_split.folds``; with
``training.members`` equal to ``training.folds``): member k was fitted on the other folds and
early-stopped on fold k (``train.train``). Its probabilities on fold k's records are out of
fold, so every rule the service applies after the network (calibration, pooling, the quality
flag's rules, the own rhythm, RuleGuard) can be scored on DS1 as it would act on patients the
networks never saw, without training anything: change a rule, run this, compare the two
reports (``python -m bench.compare BEFORE AFTER``, ``--records`` record by record). Early
stopping read fold k, so the figures lean a little optimistic: compare rules with each other
here, and the served model with the literature on DS2 (``bench.robustness``).

Each record goes through ``service.inference.predict`` with the served card and the served
preprocessing; only the network's output is the held-out member's instead of the ensemble's.
The conditions are ``bench.robustness``'s (``--only``; virtual leads with ``--angles``), made
with the noise's validation split (``train.augment.NOISE_SPLITS``: the stretch DS1 selection
reads) and electrode-motion draws of their own (``SELECTION_SEED``), scored the same way.

Two runs' members compared under one decision mix a shift of their probabilities with how well
they tell PVCs from the rest: a run whose V probabilities run higher calls more V everywhere.
``--match-false-v REPORT`` scores the members at REPORT's count of false V (non-V beats and
artefacts called V, over REPORT's records and conditions, whole and strips): it moves every
calibrated V logit by one shift (``--logit-shift``: the card's Platt intercept plus it, as a
lower or higher threshold would, rules and pooling included) and finds the shift by the secant
method, a pass over the views each step. Then the two reports' F1 of V and V sensitivity compare
at equal false alarms.

Writes ``bench/out_of_fold.json`` and ``bench/out_of_fold.md``. Needs MIT-BIH and, for the
noise conditions, the nstdb noise records (``--data``, ``--noise``); about 18 min on 2 cores for
the 13 default views (each matching pass as long again, two to four passes).
"""

import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import log, served_model_parser
from bench.robustness import (BENCH_DIR, MODES, Condition, conditions, false_v_count, run_condition, save_report,
                               write_markdown)

# what a DS1 rule is chosen on: the leads, the noises at 6 and 0 dB (nst) and 0 dB RMS muscle noise,
# and the report's pulses (no training view draws them; the no-pause rule was chosen with them in view)
DEFAULT_CONDITIONS = ("clean", "lead1", "bw +0 dB", "ma +6 dB", "ma +0 dB", "em +6 dB", "em +0 dB", "ma-rms +0 dB",
                      "pulses +12 dB", "pulses +6 dB", "pulses +0 dB")
DEFAULT_ANGLES = (30.0, 60.0)  # two leads MIT-BIH does not have, where PVCs of unlearned shapes are missed
SELECTION_SEED = 1234  # electrode-motion draws: neither training's nor the DS2 report's (bench.robustness.TEST_SEED)
MEMBER = re.compile(r"ecg_nv_cnn_(\d+)_\d+/p_v_\d+/Sigmoid")  # a member's output, as tf2onnx names it
VIRTUAL = re.compile(r"virtual (-?[\d.]+)°$")  # a virtual lead's condition name (chosen_conditions)
MATCH_PASSES = 5  # --match-false-v: passes over the views at most ...
MATCH_TOLERANCE = 0.01  # ... stopping within this share of the reference's false V ...
MATCH_FIRST_STEP = 0.3  # ... the second pass this far in logit from the first (a threshold's ~0.05 near 0.3) ...
MATCH_MAX_STEP = 1.0  # ... and no pass further than this from the one before


def member_outputs(onnx_path):
    """An ONNX Runtime session of the served graph that also answers each member's V probability,
    and those outputs' names in member order (a list of k)."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(onnx_path))
    found = {}
    for node in graph.graph.node:
        m = MEMBER.search(node.output[0]) if node.op_type == "Sigmoid" else None
        if m:
            found[int(m.group(1))] = node.output[0]
    names = [found[k] for k in sorted(found)]
    graph.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"]), names


class HeldOutMember:
    """The served model, except that its V probabilities are those of the member of ``member``'s
    index (:meth:`for_record` picks the one that held a DS1 record out); all else is the card's."""

    def __init__(self, model, model_dir):
        card = model.card
        folds = (card.get("data_split") or {}).get("folds") or []
        if model.rest is not None or (card.get("training") or {}).get("members") != len(folds) or not folds:
            raise ValueError(f"{model_dir}: not one network per DS1 fold (a cross-fitted card without a cascade)")
        self.session, self.outputs = member_outputs(Path(model_dir) / card["onnx"]["file"])
        if len(self.outputs) != len(folds):
            raise ValueError(f"{model_dir}: {len(self.outputs)} member outputs in the graph for {len(folds)} folds")
        self.model = model
        self.fold_of = {record: k for k, fold in enumerate(folds) for record in fold}
        self.member = None
        self.logit_shift = 0.0

    @property
    def decision(self):
        """The card's decision, its calibrated V logits moved by ``logit_shift``."""
        decision = dict(self.model.decision)
        calibration = dict(decision["calibration"])
        calibration["b"] = calibration.get("b", 0.0) + self.logit_shift
        decision["calibration"] = calibration
        return decision

    def __getattr__(self, name):
        return getattr(self.model, name)

    def for_record(self, name):
        """This model with the member that did not train on DS1 record ``name``."""
        if name not in self.fold_of:
            raise ValueError(f"record {name} is in none of the card's DS1 folds")
        self.member = self.fold_of[name]
        return self

    def members_p_v(self, windows, features):
        """Every member's V probability (n, k), each member's batch as the service batches."""
        from ecg.pipeline import network_rr
        from service.model import BATCH_BEATS

        windows = np.asarray(windows, dtype=np.float32)
        rr = network_rr(features, self.model.rr_width).astype(np.float32)
        parts = [np.zeros((0, len(self.outputs)), np.float32)]
        for a in range(0, len(windows), BATCH_BEATS):
            batch = {"beat": windows[a:a + BATCH_BEATS], "rr": rr[a:a + BATCH_BEATS]}
            parts.append(np.stack([p.reshape(-1) for p in self.session.run(self.outputs, batch)], axis=1))
        return np.concatenate(parts)

    def p_v(self, windows, features):
        return self.members_p_v(windows, features)[:, self.member]


def chosen_conditions(only, angles):
    """The conditions to run (``bench.robustness``'s names) and the virtual leads at ``angles``."""
    known = {c.name: c for c in conditions()}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in only] + [Condition(f"virtual {a:g}°", lead="mixed", mix_deg=a) for a in angles]


def conditions_of(report):
    """The conditions a report of this module ran, in its order: (names, virtual leads' angles)."""
    names, angles = [], []
    for name in report["conditions"]:
        m = VIRTUAL.match(name)
        if m:
            angles.append(float(m.group(1)))
        else:
            names.append(name)
    return names, angles


def false_v(report):
    """Non-V beats and artefacts called V over a report's conditions, whole records and strips."""
    return sum(false_v_count(res[mode]["all"]) for res in report["conditions"].values() for mode in MODES)


def next_shift(tried, target):
    """The secant method's next logit shift toward ``target`` false V, from ``tried``: (shift,
    false V) pairs, in the order run. False V grow with the shift, their logarithm near linearly;
    a first or flat step goes ``MATCH_FIRST_STEP`` their way, no step further than ``MATCH_MAX_STEP``."""
    s1, f1 = tried[-1]
    step = MATCH_FIRST_STEP if f1 < target else -MATCH_FIRST_STEP
    if len(tried) > 1 and tried[-2][1] != f1:
        s0, f0 = tried[-2]
        slope = (np.log(f1 + 1) - np.log(f0 + 1)) / (s1 - s0)
        if slope > 0:
            step = (np.log(target + 1) - np.log(f1 + 1)) / slope
    return s1 + float(np.clip(step, -MATCH_MAX_STEP, MATCH_MAX_STEP))


def matched_report(score_at, target, log):
    """The report ``score_at(shift)`` whose false V are nearest ``target`` (within
    ``MATCH_TOLERANCE`` of it, or the nearest of ``MATCH_PASSES`` passes), with its shift."""
    tried, reports = [], []
    shift = 0.0
    for _ in range(MATCH_PASSES):
        report = score_at(shift)
        tried.append((shift, false_v(report)))
        reports.append(report)
        log(f"logit shift {shift:+.3f}: {tried[-1][1]} false V against {target}")
        if abs(tried[-1][1] - target) <= MATCH_TOLERANCE * target:
            break
        shift = next_shift(tried, target)
    best = min(range(len(tried)), key=lambda i: abs(tried[i][1] - target))
    return {**reports[best], "logit_shift": tried[best][0], "false_v": tried[best][1],
            "matched_false_v": target, "passes": [list(t) for t in tried]}


def main(argv=None):
    from service.model import ModelUnavailable, load_model
    from train import augment
    from train.data import DS1, data_dir, require_records

    ap = served_model_parser("python -m bench.out_of_fold", __doc__)
    ap.add_argument("--noise", help="nstdb noise records (default: $ECG_NOISE_DIR, ...)")
    ap.add_argument("--records", nargs="+", default=list(DS1), help="DS1 records (default: all 22)")
    ap.add_argument("--only", nargs="+", metavar="CONDITION", default=list(DEFAULT_CONDITIONS),
                    help="bench.robustness's conditions to run")
    ap.add_argument("--angles", nargs="*", type=float, metavar="DEG", default=list(DEFAULT_ANGLES),
                    help="virtual leads to add (degrees from MLII towards channel 1; none: --angles)")
    ap.add_argument("--logit-shift", type=float, default=0.0,
                    help="added to every calibrated V logit (the card's Platt intercept), default 0")
    ap.add_argument("--match-false-v", type=Path, metavar="REPORT",
                    help="a report of this module: run its records and conditions and find the logit shift at "
                         "which the false V equal its own (replaces --records, --only, --angles, --logit-shift)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "out_of_fold.json")
    args = ap.parse_args(argv)
    try:
        reference = None
        if args.match_false_v:
            reference = json.loads(args.match_false_v.read_text())
            if not isinstance(reference, dict) or not isinstance(reference.get("conditions"), dict):
                raise ValueError(f"{args.match_false_v}: not a report of bench.out_of_fold")
            args.only, args.angles = conditions_of(reference)
            args.records = reference.get("records", args.records)
        chosen = chosen_conditions(args.only, args.angles)
        ddir = data_dir(args.data)
        require_records(ddir, args.records)
        model = HeldOutMember(load_model(args.model), args.model)
        for name in args.records:
            model.for_record(name)
        needs_noise = any(c.noise in augment.NSTDB_RECORDS for c in chosen)
        noise = augment.load_noise(augment.noise_dir(args.noise), "validation") if needs_noise else {}
    except (OSError, ModelUnavailable, ValueError) as exc:  # JSONDecodeError is a ValueError
        print(f"out_of_fold: {exc}", file=sys.stderr)
        return 2

    def score_at(shift):
        model.logit_shift = shift
        title = f"Out of fold, V logits {shift:+.3f}" if shift else "Out of fold"
        report = {"title": title, "module": "bench.out_of_fold", "model": model.summary(),
                  "records": args.records, "logit_shift": shift, "conditions": {}}
        for cond in chosen:
            report["conditions"][cond.name] = run_condition(model, cond, args.records, ddir, noise, log,
                                                            seed=SELECTION_SEED, model_for=model.for_record)
        return report

    t0 = time.perf_counter()
    report = (matched_report(score_at, false_v(reference), log) if reference is not None
              else score_at(args.logit_shift))
    report["seconds"] = time.perf_counter() - t0
    save_report(args.out, report, write_markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

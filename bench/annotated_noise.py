"""``python -m bench.annotated_noise``: the served model on the noise MIT-BIH's annotators marked.

``bench.robustness`` adds noise to clean records; this reads the noise the records hold. The
reference annotations say where each lead turns noisy: a ``~`` annotation whose subtype has bit
k set makes signal k noisy until the next ``~``, subtype -1 makes every signal unreadable
(MIT-BIH directory, "signal quality"). What they mark is recorded noise: electrode motion,
muscle, a loose lead, in one lead while the other is often clean.

Each record's two leads (MLII, and V1, V2, V4 or V5) are sent to the service's own ``predict``,
whole and as independent 10-s strips, as ``bench.robustness`` sends them, and scored twice (EC57
matching, ventricular flutter excluded): over the stretches marked clean and over those marked
noisy or unreadable. Beside the scores: how much of each the quality flag judged unreadable.

Default records: DS1 and DS2, each split reported apart (nothing here is tuned on either).
Writes ``bench/annotated_noise.json`` and ``bench/annotated_noise.md``; ~2 min on one core.
"""

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import log, served_model_parser
from bench.robustness import BENCH_DIR, MODES, STRIP_S, request, save_report, score, summarise

MARKS = ("clean", "marked noisy")
SUBTYPE_UNREADABLE = -1  # a '~' of this subtype: every signal unreadable


def noisy_ranges(samples, symbols, subtypes, channel, n):
    """Sample ranges (m, 2) int64 in which signal ``channel`` is marked noisy or unreadable.

    ``samples``, ``symbols``, ``subtypes``: (k,) the record's annotations (any kind; only ``~``
    is read), in time order; ``n``: the record's length in samples. A stretch runs from its
    ``~`` to the next one, the last to the record's end.
    """
    marks = [(int(s), int(t)) for s, sym, t in zip(samples, symbols, subtypes) if sym == "~"]
    bounds = [s for s, _ in marks] + [n]
    return np.array([(a, b) for (a, t), b in zip(marks, bounds[1:])
                     if t == SUBTYPE_UNREADABLE or (t >> channel) & 1], np.int64).reshape(-1, 2)


def complement(ranges, n):
    """The sample ranges (m', 2) of [0, n) outside ``ranges`` (m, 2), sorted and disjoint."""
    edges = np.concatenate(([0], np.asarray(ranges, np.int64).ravel(), [n])).reshape(-1, 2)
    return edges[edges[:, 1] > edges[:, 0]]


def overlap(a, b):
    """What ranges ``a`` (m, 2) and ``b`` (k, 2), each disjoint, have in common: samples of
    integer ranges (an int), seconds of float ones (a float)."""
    a, b = np.asarray(a).reshape(-1, 2), np.asarray(b).reshape(-1, 2)
    if not len(a) or not len(b):
        return 0
    lo = np.maximum(a[:, None, 0], b[None, :, 0])
    hi = np.minimum(a[:, None, 1], b[None, :, 1])
    return np.clip(hi - lo, 0, None).sum().item()


def run_lead(model, name, ddir, lead, strip_s=STRIP_S):
    """One lead of one record: for each way of sending it and each mark, the scores' counts
    (``bench.robustness.score``) and the seconds marked and judged unreadable."""
    import wfdb

    from train.data import load_record

    rec = load_record(name, ddir, lead=lead)
    ann = wfdb.rdann(str(Path(ddir) / name), "atr")
    channel = [s.strip() for s in wfdb.rdheader(str(Path(ddir) / name)).sig_name].index(rec.lead)
    n, fs = len(rec.signal), rec.fs
    noisy = noisy_ranges(ann.sample, ann.symbol, ann.subtype, channel, n)
    clean = complement(noisy, n)
    out = {}
    for mode in MODES:
        pos, lab, intervals = request(model, rec.signal, fs, rec.lead, mode, strip_s)
        unreadable = np.rint(np.array(intervals, float).reshape(-1, 2) * fs).astype(np.int64)
        for mark, ranges, others in zip(MARKS, (clean, noisy), (noisy, clean)):
            scored = dataclasses.replace(rec, excluded=np.concatenate([rec.excluded.reshape(-1, 2), others]))
            out[mode, mark] = {**score(scored, pos, lab, fs, intervals),
                               "seconds": float(np.sum(ranges[:, 1] - ranges[:, 0])) / fs,
                               "unreadable_s": overlap(ranges, unreadable) / fs}
    return rec.lead, out


def run(model, records, ddir, log, strip_s=STRIP_S):
    """The report: for each lead (MLII, other), way of sending and mark, the summed scores and
    each marked record's false V, missed V and false detections (``by_record``)."""
    from train.data import OTHER_LEAD

    report = {}
    for lead_key, lead in (("MLII", "MLII"), ("other", OTHER_LEAD)):
        per_record = {}
        for name in records:
            per_record[name] = run_lead(model, name, ddir, lead, strip_s)[1]
        for mode in MODES:
            for mark in MARKS:
                rows = [r[mode, mark] for r in per_record.values()]
                seconds = sum(r["seconds"] for r in rows)
                report.setdefault(lead_key, {}).setdefault(mode, {})[mark] = {
                    **summarise(rows), "seconds": seconds,
                    "unreadable_share": sum(r["unreadable_s"] for r in rows) / max(seconds, 1e-9),
                    "records_marked": sum(r["seconds"] > 0 for r in rows),
                    # which records the marked noise's errors come from (readable ones)
                    "by_record": {name: {"seconds": round(r[mode, mark]["seconds"], 1),
                                         "false_v": r[mode, mark]["all"]["false_v"],
                                         "v_missed": r[mode, mark]["all"]["matched"]["FN"],
                                         "false_detections": r[mode, mark]["all"]["qrs"]["FP"]}
                                  for name, r in per_record.items() if r[mode, mark]["seconds"] > 0}}
        w = report[lead_key]["whole"]["marked noisy"]["all"]
        log(f"  {lead_key}: marked noisy {report[lead_key]['whole']['marked noisy']['seconds']:.0f} s, "
            f"QRS +P {w['qrs_ppv']:.4f}, V Se {w['v_se']:.3f}, false V {100 * w['false_v_rate']:.2f} %")
    return report


def _both(whole, strips, key, fmt, scale=1.0, way="all"):
    """``whole / strips`` of one figure, formatted."""
    return " / ".join(format(scale * x[way][key], fmt) for x in (whole, strips))


def write_markdown(path, report):
    lines = [f"Model {report['model']['name']} {report['model']['version']}; "
             f"`python -m bench.annotated_noise` ({report['seconds']:.0f} s). Whole records / 10-s strips.", ""]
    lines.append("| records | lead | stretches | minutes | judged unreadable | QRS Se | QRS +P | V Se | V +P | "
                 "F1 of V | false V | readable only: F1 of V, false V |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for split, by_lead in report["splits"].items():
        for lead, by_mode in by_lead.items():
            for mark in MARKS:
                w, s = by_mode["whole"][mark], by_mode["strips"][mark]
                lines.append(
                    f"| {split} | {lead} | {mark} ({w['records_marked']} records) | {w['seconds'] / 60:.0f} | "
                    f"{100 * w['unreadable_share']:.1f} / {100 * s['unreadable_share']:.1f} % | "
                    f"{_both(w, s, 'qrs_se', '.4f')} | {_both(w, s, 'qrs_ppv', '.4f')} | "
                    f"{_both(w, s, 'v_se', '.3f')} | {_both(w, s, 'v_ppv', '.3f')} | {_both(w, s, 'v_f1', '.3f')} | "
                    f"{_both(w, s, 'false_v_rate', '.2f', 100)} % | {_both(w, s, 'v_f1', '.3f', way='readable')}, "
                    f"{_both(w, s, 'false_v_rate', '.2f', 100, 'readable')} % |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    from service.model import ModelUnavailable, load_model
    from train.data import DS1, DS2, data_dir

    ap = served_model_parser("python -m bench.annotated_noise", __doc__)
    ap.add_argument("--records", nargs="+", help="these records, as one split (default: DS1 and DS2 apart)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "annotated_noise.json")
    args = ap.parse_args(argv)

    try:
        ddir = data_dir(args.data)
        model = load_model(args.model)
    except (FileNotFoundError, ModelUnavailable, ValueError) as exc:
        print(f"annotated_noise: {exc}", file=sys.stderr)
        return 2
    splits = {"records": args.records} if args.records else {"DS1": list(DS1), "DS2": list(DS2)}
    missing = [r for rs in splits.values() for r in rs if not (Path(ddir) / f"{r}.atr").exists()]
    if missing:
        print(f"annotated_noise: no annotations for record(s) {', '.join(missing)} in {ddir}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = {"model": model.summary(), "strip_s": STRIP_S, "splits": {}}
    for split, records in splits.items():
        log(split)
        report["splits"][split] = run(model, records, ddir, log)
    report["seconds"] = time.perf_counter() - t0
    save_report(args.out, report, write_markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

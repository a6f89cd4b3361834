"""Score ``ecg.detect.detect_r_peaks`` on MIT-BIH after ANSI/AAMI EC57.

    python -m train.detector_eval --data DIR [--records 100 101 ...] [--lead MLII]
                                [--strip-seconds S] [--json OUT]

Whole records by default; with ``--strip-seconds S`` each record is cut into
independent S-second strips, the detector runs on each strip alone (as the service
does on a request) and the detections are mapped back to the record before scoring.
Matching: +-150 ms, one to one, ventricular flutter left out (EC57; record 207).
Prints a per-record table and the gross figures (sums over all records). Bad input (no
MIT-BIH directory, a record or a channel it does not have) is one line on stderr and
exit status 2. The scoring itself is ``ecg.ec57``'s; this CLI reads the records (wfdb),
so it lives with the training code and the numpy-only ``ecg`` core does not import it.
"""

import argparse
import json
import sys
import time

import numpy as np

from ecg.detect import detect_r_peaks
from ecg.ec57 import detection_stats

from .cli import at_least
from .data import ALL_RECORDS, data_dir, load_record, require_records

WITHIN_MS = 30.0  # position tolerance the classifier's windows can live with


def detect_in_strips(x, fs, strip_seconds):
    """Run the detector on consecutive independent strips of ``x``; record sample indices."""
    step = max(int(round(strip_seconds * fs)), 1)
    found = [detect_r_peaks(x[s:s + step], fs) + s for s in range(0, len(x), step)]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)


def score_record(rec, strip_seconds=None):
    """Detection figures of one ``train.data.Record``; positions errors in ms."""
    t0 = time.perf_counter()
    if strip_seconds:
        det = detect_in_strips(rec.signal, rec.fs, strip_seconds)
    else:
        det = detect_r_peaks(rec.signal, rec.fs)
    seconds = time.perf_counter() - t0
    st = detection_stats(rec.ann_samples, det, rec.fs, rec.excluded)
    err = np.asarray(st["errors_ms"], dtype=np.float64)
    return {
        "record": rec.name,
        "lead": rec.lead,
        "ref_beats": st["TP"] + st["FN"],
        "TP": st["TP"],
        "FN": st["FN"],
        "FP": st["FP"],
        "Se": st["Se"],
        "PPV": st["PPV"],
        "within_30ms": float(np.mean(np.abs(err) <= WITHIN_MS)) if len(err) else float("nan"),
        "median_error_ms": float(np.median(err)) if len(err) else float("nan"),
        "n_within_30ms": int(np.sum(np.abs(err) <= WITHIN_MS)),
        "detect_seconds": seconds,
    }


def gross(rows):
    """Gross figures: beats summed over records before taking ratios (EC57)."""
    tp = sum(r["TP"] for r in rows)
    fn = sum(r["FN"] for r in rows)
    fp = sum(r["FP"] for r in rows)
    w = sum(r["n_within_30ms"] for r in rows)
    return {
        "ref_beats": tp + fn, "TP": tp, "FN": fn, "FP": fp,
        "Se": tp / (tp + fn) if tp + fn else float("nan"),
        "PPV": tp / (tp + fp) if tp + fp else float("nan"),
        "within_30ms": w / tp if tp else float("nan"),
        "detect_seconds": sum(r["detect_seconds"] for r in rows),
    }


def format_table(rows, total):
    head = (f"{'record':>6} {'lead':>5} {'beats':>6} {'TP':>6} {'FN':>5} {'FP':>5} {'Se %':>7} {'+P %':>7} "
            f"{'<=30ms %':>8} {'med ms':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['record']:>6} {r['lead']:>5} {r['ref_beats']:6d} {r['TP']:6d} {r['FN']:5d} {r['FP']:5d} "
            f"{100 * r['Se']:7.2f} {100 * r['PPV']:7.2f} {100 * r['within_30ms']:8.2f} {r['median_error_ms']:7.1f}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'gross':>6} {'':>5} {total['ref_beats']:6d} {total['TP']:6d} {total['FN']:5d} {total['FP']:5d} "
        f"{100 * total['Se']:7.3f} {100 * total['PPV']:7.3f} {100 * total['within_30ms']:8.2f}"
    )
    return "\n".join(lines)


def channel_name(name, directory, lead):
    """The name of the record's channel ``lead`` (a name, or a number ``N``).

    MLII stands in for channel 0 in the records without it (102 and 104); any other name a
    record does not have is refused, not scored on another lead's beats."""
    import wfdb

    names = [s.strip() for s in wfdb.rdheader(str(directory / str(name))).sig_name]
    if lead.isdigit():
        if int(lead) >= len(names):
            raise LookupError(f"record {name} has channels 0 to {len(names) - 1}, not {lead}")
        return names[int(lead)]
    if lead not in names and lead != "MLII":
        raise LookupError(f"record {name} has no lead {lead} (it has {', '.join(names)}): "
                          "--lead 1 reads each record's second channel")
    return lead


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.detector_eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="MIT-BIH directory (default: $ECG_DATA_DIR or train.data's default)")
    ap.add_argument("--records", nargs="+", default=None, help="record names (default: all 48)")
    ap.add_argument("--lead", default="MLII",
                    help="lead name, or a channel number such as 0; MLII stands for channel 0 where a "
                         "record has none (102, 104); another name must be in every record (default: MLII)")
    ap.add_argument("--strip-seconds", type=at_least(float, 5.0), default=None,
                    help="cut each record into independent strips of this length (default: whole records)")
    ap.add_argument("--json", default=None, help="write the per-record and gross figures here")
    args = ap.parse_args(argv)

    names = args.records or ALL_RECORDS
    try:  # every record and lead checked before any is scored
        directory = data_dir(args.data)
        require_records(directory, names)
        leads = [channel_name(name, directory, args.lead) for name in names]
    except (FileNotFoundError, LookupError) as exc:  # the input's fault: say what, no traceback
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        return 2
    rows = [score_record(load_record(name, directory, lead=lead), args.strip_seconds)
            for name, lead in zip(names, leads)]
    total = gross(rows)
    mode = f"{args.strip_seconds:g}-s strips" if args.strip_seconds else "whole records"
    print(f"QRS detection, EC57 matching (+-150 ms), {mode}, {len(rows)} records from {directory}")
    print(format_table(rows, total))
    print(f"gross Se {100 * total['Se']:.3f} %  +P {100 * total['PPV']:.3f} %  "
          f"within +-30 ms {100 * total['within_30ms']:.2f} %  detector time {total['detect_seconds']:.2f} s")
    if args.json:
        out = {"mode": mode, "strip_seconds": args.strip_seconds, "data": str(directory),
               "records": rows, "gross": total}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench.detector_noise``: QRS Se / +P of ``ecg.detect.detect_r_peaks`` under noise.

The detector alone (no model, no service), on whole MIT-BIH records, scored against the
reference beats after EC57 (``ecg.ec57.detection_stats``: +-150 ms, one to one, ventricular
flutter left out). Conditions (``--conditions`` picks some, by name):

- ``clean``: the lead as recorded;
- ``bw``, ``ma``, ``em`` at 12, 6, 0, -6 dB: the MIT-BIH Noise Stress Test's protocol and SNR
  definition (the first 5 min clean, then 2 min noisy and 2 min clean in turn; SNR from the
  QRS peak-to-peak amplitude), built with ``bench.robustness``'s own functions
  (``noise_signal``, ``corrupt``, ``nst_protocol``);
- ``ma-rms`` at 6 and 0 dB: ``ma`` over the whole record, SNR = RMS of the clean signal over
  RMS of the noise;
- ``block 2:1``: the record as a 2:1 atrioventricular block would record it
  (``bench.robustness.two_to_one_block``): every second P wave is not followed by a QRS complex, and the
  detector must not take it for a beat;
- ``fast 180 bpm``, ``fast 210 bpm``, ``fast 240 bpm``: a fast regular rhythm made of the
  record's own beats (:func:`fast_rhythm`), as in a supraventricular tachycardia, an infant or
  exercise: pairs of beats closer than 300 ms must not be taken for a beat and its T wave;
- ``fast 150 bpm irregular``, ``170``, ``190``: the same with each RR drawn within +-30 % of
  the mean, as in atrial fibrillation with a fast ventricular response;
- ``breathing 30 %``, ``breathing 60 %``: the lead's size swung by that share over each 4-s
  breath (``bench.robustness.breathing_swing``): beats at a breath's trough must not fall under
  the threshold its crest set;
- ``slow 40 bpm``, ``slow 30 bpm``: the record's own beats spread to a slow rhythm
  (``bench.robustness.slow_rhythm``), as in sleep or sinus node disease: the long RRs must not
  make search-back take T waves for beats.

Whole records by default; ``--strip-seconds 10`` runs the detector on independent 10-s strips
instead, as the service sees requests (``train.detector_eval.detect_in_strips``).

``bw`` and ``ma`` come from the nstdb records' ``--split`` stretch (``train.augment.NOISE_SPLITS``:
``test`` for DS2, the default; ``train`` or ``validation`` to tune on DS1); ``em`` is our
electrode-motion model (``train.augment.electrode_motion``), drawn with ``bench.robustness``'s
report seed for the test split and with another seed otherwise, so tuning never sees the
report's draws. Default records: DS2. ``--channel 1`` reads the other lead (V1, V2, V4 or V5).

Prints one line per condition (Se, +P, FP, FN, detector seconds) and writes ``--out`` (JSON,
with per-record counts) when given. Each record is read and noised once per condition: all
conditions on DS2 take well under a minute on one core.
"""

import argparse
import json
import sys
import time
import zlib

import numpy as np

from bench.robustness import (BLOCK_2TO1, BREATHING, SLOW_BPM, TEST_SEED, Condition, corrupt, slow_rhythm,
                               two_to_one_block)
from ecg.detect import detect_r_peaks
from ecg.ec57 import detection_stats, in_ranges
from train.cli import at_least

NST_SNRS = (12, 6, 0, -6)
RMS_SNRS = (6, 0)
TUNING_SEED = 7_340_021  # electrode-motion draws off the report's split: far from TEST_SEED
IRREGULAR_SPREAD = 0.30  # an irregular fast rhythm's RRs: uniform within this share of the mean
FAST_RHYTHMS = {**{f"fast {bpm} bpm": (bpm, 0.0) for bpm in (180, 210, 240)},
                **{f"fast {bpm} bpm irregular": (bpm, IRREGULAR_SPREAD) for bpm in (150, 170, 190)}}
SLOW_RHYTHMS = {f"slow {bpm} bpm": bpm for bpm in SLOW_BPM}
SPLICE_FROM_RR = 0.3  # a beat's window of the fast rhythm starts this share of its RR before its R
# peak (P wave and QRS kept, the T wave cut short as at such rates) ...
CROSSFADE_S = 0.020  # ... and overlaps the previous window this long, faded linearly (no step)


def fast_rhythm(signal, ann_samples, excluded, fs, bpm, spread=0.0, seed=0):
    """A fast rhythm of ``bpm`` on average made of a record's own beats, in their order.

    Each reference beat outside ``excluded`` ((m, 2) sample ranges) gives its window of one new
    RR (60 / ``bpm`` s, or drawn uniformly within +-``spread`` of it, from ``seed``), from
    ``SPLICE_FROM_RR`` of it before its R peak, spliced after the previous window with a
    ``CROSSFADE_S`` crossfade. QRS shapes, PVCs included, are kept as recorded. ``signal``:
    (n,) mV. Returns ``(x, beats)``: the signal and its beats' samples.
    """
    peaks = np.asarray(ann_samples)
    peaks = peaks[~in_ranges(peaks, excluded)]
    rng = np.random.default_rng(seed)
    rrs = np.rint(60.0 / bpm * fs * (1 + spread * rng.uniform(-1, 1, len(peaks)))).astype(np.int64)
    before, fade = (SPLICE_FROM_RR * rrs).astype(np.int64), max(int(CROSSFADE_S * fs), 1)
    fits = (peaks - before - fade >= 0) & (peaks - before + rrs + fade <= len(signal))
    peaks, rrs, before = peaks[fits], rrs[fits], before[fits]
    starts = np.concatenate([[0], np.cumsum(rrs)])
    ramp = np.linspace(0.0, 1.0, 2 * fade)
    x = np.zeros(starts[-1] + 2 * fade)
    for i, (peak, rr, pre) in enumerate(zip(peaks, rrs, before)):
        window = np.array(signal[peak - pre - fade: peak - pre + rr + fade], dtype=np.float64)
        start = starts[i]
        if i:
            window[:2 * fade] = x[start:start + 2 * fade] * (1 - ramp) + window[:2 * fade] * ramp
        x[start:start + rr + 2 * fade] = window
    return x, starts[:-1] + fade + before


def conditions():
    """The conditions, in report order."""
    out = [Condition("clean")]
    for kind in ("ma", "bw", "em"):
        out += [Condition(f"{kind} {snr:+d} dB", noise=kind, snr_db=snr) for snr in NST_SNRS]
    out += [Condition(f"ma-rms {snr:+d} dB", noise="ma", snr_db=snr, definition="rms", protocol="continuous")
            for snr in RMS_SNRS]
    out += [Condition(f"breathing {100 * d:.0f} %", breathing=d) for d in BREATHING]
    return out + [Condition(BLOCK_2TO1, block=True)] + [Condition(name) for name in (*FAST_RHYTHMS, *SLOW_RHYTHMS)]


def score(rec, x, strip_seconds=None, reference=None, excluded=None):
    """Counts of the detector on signal ``x`` (n,) of record ``rec``, and its time (s): on the
    whole signal, or on independent ``strip_seconds`` strips as the service sees requests.
    ``reference``, ``excluded``: the beats to score against and the ranges left out (default
    the record's)."""
    from train.detector_eval import detect_in_strips

    t0 = time.perf_counter()
    det = detect_in_strips(x, rec.fs, strip_seconds) if strip_seconds else detect_r_peaks(x, rec.fs)
    seconds = time.perf_counter() - t0
    reference = rec.ann_samples if reference is None else reference
    excluded = rec.excluded if excluded is None else excluded
    st = detection_stats(reference, det, rec.fs, excluded)
    return {"TP": st["TP"], "FN": st["FN"], "FP": st["FP"], "seconds": seconds}


def totals(rows):
    """Gross figures over records: counts summed before the ratios (EC57)."""
    tp, fn, fp = (sum(r[k] for r in rows.values()) for k in ("TP", "FN", "FP"))
    return {"Se": tp / max(tp + fn, 1), "PPV": tp / max(tp + fp, 1), "TP": tp, "FN": fn, "FP": fp,
            "seconds": sum(r["seconds"] for r in rows.values())}


def signal_and_beats(rec, cond, noise, channel, seed):
    """Condition ``cond``'s signal of record ``rec`` and the beats to score it against:
    ``(x, reference, excluded)``, None for the record's own."""
    if cond.block:
        blocked = two_to_one_block(rec)
        return blocked.signal, blocked.ann_samples, None
    if cond.name in FAST_RHYTHMS:
        bpm, spread = FAST_RHYTHMS[cond.name]
        x, reference = fast_rhythm(rec.signal, rec.ann_samples, rec.excluded, rec.fs, bpm, spread,
                                   seed=(seed, zlib.crc32(rec.name.encode())))
        return x, reference, np.zeros((0, 2), np.int64)  # the excluded stretches were left out
    if cond.name in SLOW_RHYTHMS:
        slow = slow_rhythm(rec, SLOW_RHYTHMS[cond.name])
        return slow.signal, slow.ann_samples, slow.excluded  # the excluded stretches were left out
    x, _ = corrupt(rec, cond, noise, channel, seed)
    return x, None, None


def run(records, chosen, ddir, noise, channel, split, log, strip_seconds=None):
    """{condition: {"gross": ..., "records": {name: counts}}}, each record read once."""
    from train.data import OTHER_LEAD, load_record

    report = {c.name: {"records": {}} for c in chosen}
    seed = TEST_SEED if split == "test" else TUNING_SEED
    for name in records:
        rec = load_record(name, ddir, lead="MLII" if channel == 0 else OTHER_LEAD)
        for cond in chosen:
            x, reference, excluded = signal_and_beats(rec, cond, noise, channel, seed)
            report[cond.name]["records"][name] = score(rec, x, strip_seconds, reference, excluded)
    for cond in chosen:
        g = report[cond.name]["gross"] = totals(report[cond.name]["records"])
        log(f"{cond.name:>22}: Se {g['Se']:.4f}  +P {g['PPV']:.4f}  FN {g['FN']:6d}  FP {g['FP']:6d}  "
            f"{g['seconds']:.1f} s")
    return report


def main(argv=None):
    from train import augment
    from train.data import DS2, data_dir, require_records

    ap = argparse.ArgumentParser(prog="python -m bench.detector_noise", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="MIT-BIH directory (default: $ECG_DATA_DIR, ...)")
    ap.add_argument("--noise", help="nstdb noise records (default: $ECG_NOISE_DIR, ...)")
    ap.add_argument("--records", nargs="+", default=list(DS2), help="record names (default: DS2)")
    ap.add_argument("--channel", type=int, choices=(0, 1), default=0,
                    help="0: MLII (channel 0 where a record has none); 1: the other lead")
    ap.add_argument("--split", choices=tuple(augment.NOISE_SPLITS), default="test",
                    help="the noise records' stretch (default: test, for DS2)")
    ap.add_argument("--conditions", nargs="+", metavar="NAME", help="run these conditions only (names as listed)")
    ap.add_argument("--strip-seconds", type=at_least(float, 5.0), help="detect on independent strips of this length "
                    "(default: whole records)")
    ap.add_argument("--out", help="write the figures here (JSON)")
    args = ap.parse_args(argv)

    chosen = [c for c in conditions() if not args.conditions or c.name in args.conditions]
    if args.conditions and len(chosen) != len(args.conditions):
        known = ", ".join(repr(c.name) for c in conditions())
        print(f"{ap.prog}: error: unknown condition in {args.conditions}; known: {known}", file=sys.stderr)
        return 2
    try:
        ddir = data_dir(args.data)
        require_records(ddir, args.records)
        needs_noise = any(c.noise in augment.NSTDB_RECORDS for c in chosen)
        noise = augment.load_noise(augment.noise_dir(args.noise), args.split) if needs_noise else {}
    except (FileNotFoundError, ValueError) as exc:
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, flush=True)

    mode = f"{args.strip_seconds:g}-s strips" if args.strip_seconds else "whole records"
    log(f"QRS detection under noise, EC57 matching (+-150 ms), {mode}, channel {args.channel}, "
        f"noise split {args.split}, {len(args.records)} records")
    report = run(args.records, chosen, ddir, noise, args.channel, args.split, log, args.strip_seconds)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"records": args.records, "channel": args.channel, "split": args.split, "mode": mode,
                       "conditions": report}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

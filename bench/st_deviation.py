"""``python -m bench.st_deviation``: the served path on records whose ST segments are displaced.

Ischaemia raises or lowers the ST segment of every conducted beat, in episodes of minutes (the
European ST-T Database's kind of recording); no training view draws it. Each conducted beat
(AAMI N or S) is displaced by ``D`` mV from its J point to its T wave's end
(:func:`st_displacement`); V beats keep their own repolarisation. ``episodes``: the displacement
comes and goes as nst's noise does (``bench.robustness.noisy_mask``: 5 min as recorded, then 2 min
displaced and 2 min not) with ramps of ``EPISODE_RAMP_S``. Scored as ``bench.robustness``
scores, DS2 through the served model or, with ``--out-of-fold``, DS1 through the member that held
each record out (``bench.out_of_fold``). Prints one line per condition and writes
``bench/st_deviation.json``.
"""

import json
import sys
from pathlib import Path

import numpy as np

from bench.common import log, served_model_parser
from bench.robustness import BENCH_DIR, MODES, noisy_mask, request, score, summarise

J_POINT_S = 0.05  # the ST segment starts this long after the R peak (a QRS's second half) ...
RISE_S = 0.03  # ... where the displacement reaches its level within this ...
QTC_S = 0.40  # ... and ends with the T wave, at R + QTc x sqrt(RR before) (Bazett, QTc 0.40 s)
EPISODE_RAMP_S = 30.0  # an ST episode's onset and offset: ischaemia sets in over tens of seconds
CONDITIONS = ((0.0, False), (0.2, False), (-0.2, False), (0.3, True), (-0.3, True), (0.5, True), (-0.5, True))


def st_displacement(peaks, classes, fs, n, mv):
    """(n,) the displacement (mV) of each conducted beat's ST segment and T wave by ``mv``.

    ``peaks``: reference R peaks (samples at ``fs`` Hz), ``classes`` their AAMI classes. Over
    R + ``J_POINT_S`` to R + QT (at most 0.9 of the RR after): a half-cosine rise over
    ``RISE_S``, held over the first half, a half-cosine fall to 0 at the T wave's end.
    """
    out = np.zeros(n)
    for i in range(1, len(peaks)):
        if classes[i] not in ("N", "S"):
            continue
        qt = QTC_S * np.sqrt(np.clip((peaks[i] - peaks[i - 1]) / fs, 0.3, 2.0))
        if i + 1 < len(peaks):
            qt = min(qt, 0.9 * (peaks[i + 1] - peaks[i]) / fs)
        a, b = peaks[i] + int(J_POINT_S * fs), peaks[i] + int(qt * fs)
        if b - a < int(0.1 * fs) or a >= n:
            continue
        t = np.arange(b - a) / fs
        half = (b - a) / fs / 2
        rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / RISE_S, 0, 1))
        fall = np.where(t < half, 1.0, 0.5 + 0.5 * np.cos(np.pi * (t - half) / half))
        out[a:min(b, n)] += (mv * rise * fall)[:min(b, n) - a]
    return out


def episodes(n, fs):
    """(n,) 0 to 1: where nst's protocol would add noise, with ramps of ``EPISODE_RAMP_S``."""
    k = int(EPISODE_RAMP_S * fs)
    return np.convolve(noisy_mask(n, fs).astype(float), np.ones(k) / k, mode="same")


def run(model, records, data_dir, mv, episodic, model_for=None):
    """``summarise``'d counts of one condition over ``records``, whole and as 10-s strips."""
    from train.data import load_record

    rows = {mode: [] for mode in MODES}
    for name in records:
        rec = load_record(name, data_dir)
        shift = st_displacement(rec.ann_samples, rec.ann_classes, rec.fs, len(rec.signal), mv)
        x = rec.signal + (shift * episodes(len(shift), rec.fs) if episodic else shift)
        scorer = model_for(name) if model_for else model
        for mode in MODES:
            pos, lab, intervals = request(scorer, x, rec.fs, rec.lead, mode)
            rows[mode].append(score(rec, pos, lab, rec.fs, intervals))
    return {mode: summarise(r) for mode, r in rows.items()}


def main(argv=None):
    from bench.out_of_fold import HeldOutMember
    from service.model import ModelUnavailable, load_model
    from train.data import DS1, DS2, data_dir, require_records

    ap = served_model_parser("python -m bench.st_deviation", __doc__)
    ap.add_argument("--out-of-fold", action="store_true", help="DS1, each record by its held-out member")
    ap.add_argument("--records", nargs="+", help="default: DS2 (DS1 with --out-of-fold)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "st_deviation.json")
    args = ap.parse_args(argv)
    records = args.records or list(DS1 if args.out_of_fold else DS2)
    try:
        ddir = data_dir(args.data)
        require_records(ddir, records)
        model = load_model(args.model)
        if args.out_of_fold:
            model = HeldOutMember(model, args.model)
            for name in records:  # a record outside the card's DS1 folds has no held-out member
                model.for_record(name)
    except (FileNotFoundError, ModelUnavailable, ValueError) as exc:
        print(f"st_deviation: {exc}", file=sys.stderr)
        return 2
    model_for = model.for_record if args.out_of_fold else None
    report = {}
    for mv, episodic in CONDITIONS:
        name = f"st {mv:+.1f} mV{' episodes' if episodic else ''}"
        report[name] = res = run(model, records, ddir, mv, episodic, model_for)
        w, s = res["whole"]["all"], res["strips"]["all"]
        log(f"{name:>20}: whole V F1 {w['v_f1']:.4f} false V {100 * w['false_v_rate']:.2f} %, QRS Se "
            f"{w['qrs_se']:.4f} +P {w['qrs_ppv']:.4f}; strips V F1 {s['v_f1']:.4f} false V "
            f"{100 * s['false_v_rate']:.2f} %")
    args.out.write_text(json.dumps({"records": records, "conditions": report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

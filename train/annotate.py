"""Annotate a whole recording offline, in the ecosystem's formats: ``python -m train.annotate``.

    python -m train.annotate RECORD_OR_EDF [--channel C] [--out DIR] [--data DIR]

``RECORD_OR_EDF``: an EDF/EDF+ file, a WFDB record path without extension
(``tests/data/mitdb/119``), or a MIT-BIH record name found in ``--data`` /
``$ECG_DATA_DIR``. Writes into ``--out`` (default: the current folder):

- ``NAME.nv``: every beat as a WFDB annotation (``N`` or ``V``, at the recording's own
  sampling rate), for ``wfdb.rdann(NAME, "nv")`` and PhysioNet's ``bxb -r NAME -a atr nv``;
  each stretch the service judged unreadable is bracketed, as MIT-BIH marks noise, by a ``~``
  (signal quality change) of subtype -1 (every signal unreadable) at its start and one of
  subtype 0 (clean) at its end, and each stretch that looks like ventricular flutter
  (``ecg.flutter``) by a ``[`` and a ``]``, as MIT-BIH marks flutter episodes (PhysioNet's
  ``epic`` compares such episodes);
- ``NAME.holter.json``: the report ``POST /api/v1/recordings`` answers, with the beats.

The beats are the service's: the same analysis (``service.holter``) on the same EDF
channel; a WFDB record is first written as an EDF (1-uV steps, as ``bench.edf_files``
writes them). Errors: one line on stderr, exit status 2, nothing written.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ANNOTATION_EXTENSION = "nv"


def _wfdb_base(arg, data):
    """The WFDB record base path of ``arg`` (a path, or a record name in the data folder), or None."""
    if Path(arg + ".hea").is_file():
        return arg
    if os.sep in arg:
        return None
    from train.data import data_dir

    try:
        base = data_dir(data) / arg
    except FileNotFoundError:
        return None
    return str(base) if Path(str(base) + ".hea").is_file() else None


def wfdb_as_edf(base, channel, folder):
    """Write the WFDB record ``base``'s ``channel`` (index, label or None: MLII, else 0) as an EDF in ``folder``.

    Returns the EDF path. Raises ValueError when the channel does not exist.
    """
    import wfdb

    from bench.edf_files import write_edf

    rec = wfdb.rdrecord(base)
    names = [s.strip() for s in rec.sig_name]
    if channel is None:
        index = names.index("MLII") if "MLII" in names else 0
    elif channel.isdigit() and int(channel) < len(names):
        index = int(channel)
    elif channel in names:
        index = names.index(channel)
    else:
        raise ValueError(f"record {Path(base).name} has no channel {channel!r} (it has {', '.join(names)})")
    path = Path(folder) / f"{Path(base).name}.edf"
    n = write_edf(path, [rec.p_signal[:, index]], int(rec.fs), [names[index]], record_s=1)
    if n < rec.sig_len:  # EDF holds whole data records: the last partial second is left out
        print(f"note: the last {rec.sig_len - n} samples (under 1 s) are not in the analysis", file=sys.stderr)
    return path


# stretches of the report bracketed by marks, as MIT-BIH marks them: (the result's key, the
# opening mark's symbol and subtype, the closing mark's); "~" is a signal quality change (subtype
# -1: every signal unreadable, 0: clean), "[" and "]" the start and end of ventricular flutter
STRETCH_MARKS = (("unreadable_intervals_s", ("~", -1), ("~", 0)), ("flutter_intervals_s", ("[", 0), ("]", 0)))


def annotation_rows(result, fs, n_samples):
    """``(sample, symbol, subtype)`` of the annotation file, in time order: each beat (``N`` or
    ``V``, subtype 0) and the marks of ``STRETCH_MARKS`` at each stretch's start and end."""
    beats = result["positions"].astype(np.int64)
    samples, symbols, subtypes = [beats], [np.where(result["is_v"], "V", "N")], [np.zeros(len(beats), np.int64)]
    for key, *marks in STRETCH_MARKS:
        stretches = np.clip(np.rint(np.asarray(result[key]).reshape(-1, 2) * fs), 0, max(n_samples - 1, 0))
        for column, (symbol, subtype) in enumerate(marks):
            samples.append(stretches[:, column].astype(np.int64))
            symbols.append(np.full(len(stretches), symbol))
            subtypes.append(np.full(len(stretches), subtype, np.int64))
    sample = np.concatenate(samples)
    order = np.argsort(sample, kind="stable")
    return sample[order], np.concatenate(symbols)[order].tolist(), np.concatenate(subtypes)[order]


def annotate(edf_path, channel, out, name, model_dir, processes):
    """Analyse ``edf_path`` and write ``NAME.nv`` and ``NAME.holter.json`` into ``out``. Returns the report."""
    import wfdb

    from service import holter, holter_report
    from service.edf import open_channel
    from service.model import load_model

    start = time.perf_counter()
    model = load_model(model_dir)
    ch = open_channel(edf_path, channel)
    result = holter.analyse(model, model_dir, ch, holter.Settings(processes=processes))
    report = {"recording_id": str(uuid.uuid4()),
              **holter_report.report_fields(ch, result, model, include_beats=True),
              "processing_time_ms": round((time.perf_counter() - start) * 1000.0, 3)}
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".annotate-"))  # whole files appear, or none
    try:
        sample, symbol, subtype = annotation_rows(result, ch.fs, int(round(ch.duration_s * ch.fs)))
        wfdb.wrann(name, ANNOTATION_EXTENSION, sample=sample, symbol=symbol, subtype=subtype,
                   fs=ch.fs, write_dir=str(staging))
        (staging / f"{name}.holter.json").write_text(json.dumps(report, indent=1))
        for f in staging.iterdir():
            os.replace(f, out / f.name)
    finally:
        for f in staging.iterdir():
            f.unlink()
        staging.rmdir()
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.annotate", description=__doc__.split("\n\n")[0])
    ap.add_argument("recording", metavar="RECORD_OR_EDF")
    ap.add_argument("--channel", help="index or label of the signal (default: the first ECG lead, else 0)")
    ap.add_argument("--out", default=".", type=Path, help="folder for NAME.nv and NAME.holter.json")
    ap.add_argument("--data", help="MIT-BIH folder for a record name (default: $ECG_DATA_DIR, data/mitdb...)")
    ap.add_argument("--model", default=None, help="model folder (default: models/ecg_nv_cnn)")
    ap.add_argument("--processes", type=int, default=0, help="processes (default 0: the idle cores)")
    args = ap.parse_args(argv)

    from service.config import DEFAULT_MODEL_DIR
    from service.edf import EdfError
    from service.holter import NoBeats
    from service.model import ModelUnavailable

    model_dir = args.model or str(DEFAULT_MODEL_DIR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if Path(args.recording).is_file():
                edf, channel, name = Path(args.recording), args.channel, Path(args.recording).stem
            else:
                base = _wfdb_base(args.recording, args.data)
                if base is None:
                    raise FileNotFoundError(f"{args.recording}: no such EDF file or WFDB record")
                edf, channel, name = wfdb_as_edf(base, args.channel, tmp), None, Path(base).name
            report = annotate(edf, channel, args.out, name, model_dir, args.processes)
    except (EdfError, NoBeats, ModelUnavailable, FileNotFoundError, ValueError, OSError) as exc:
        message = str(exc) or "no heartbeat found in the channel (flat line, or no QRS complex)"
        print(f"annotate: {message}", file=sys.stderr)
        return 2
    print(f"{name}: {report['total_beats']} beats, {report['ventricular_beats']} V "
          f"({report['pvc_burden_percent']}%), written to {args.out / (name + '.' + ANNOTATION_EXTENSION)} "
          f"and {name}.holter.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MIT-BIH Arrhythmia Database: where it is, how records are read, how they are split.

Data: Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng Med
Biol 20(3):45-50, 2001; Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet.
Circulation 101(23):e215-e220, 2000. Distributed by PhysioNet under ODC-By 1.0.

``python -m train.data download [--data DIR]`` fetches the database for users with
internet access (wfdb's PhysioNet client). Nothing else in the project downloads.
"""

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG
# morphology and heartbeat interval features. IEEE TBME 51(7):1196-1206, 2004.
DS1 = ("101 106 108 109 112 114 115 116 118 119 122 124 201 203 205 207 208 209 215 220 223 230").split()
DS2 = ("100 103 105 111 113 117 121 123 200 202 210 212 213 214 219 221 222 228 231 232 233 234").split()
PACED = ("102", "104", "107", "217")
ALL_RECORDS = sorted(DS1 + DS2 + list(PACED))

# AAMI EC57 beat classes from MIT-BIH beat symbols.
AAMI_CLASS = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
BEAT_SYMBOLS = frozenset(AAMI_CLASS)

DEFAULT_DATA_DIRS = ("data/mitdb", "../shared/data/mitdb")


def data_dir(path=None):
    """The MIT-BIH directory: ``path``, else ``$ECG_DATA_DIR``, else the first default that exists.

    A directory named on purpose (``path``, ``$ECG_DATA_DIR``) must hold records: a wrong one
    raises ``FileNotFoundError`` rather than quietly falling back to another copy.
    """
    for given, source in ((path, "--data"), (os.environ.get("ECG_DATA_DIR"), "ECG_DATA_DIR")):
        if given:
            if has_records(given):
                return Path(given)
            raise FileNotFoundError(f"{source} {given}: no MIT-BIH records (*.hea) there "
                                    f"({'not a directory' if not Path(given).is_dir() else 'an empty directory'})")
    for candidate in DEFAULT_DATA_DIRS:
        if has_records(candidate):
            return Path(candidate)
    raise FileNotFoundError(
        "MIT-BIH data not found: pass --data DIR or set ECG_DATA_DIR "
        "(python -m train.data download fetches it)"
    )


def require_records(directory, names):
    """Raise ``FileNotFoundError`` naming the records of ``names`` that ``directory`` does not hold."""
    missing = [str(n) for n in names if not (Path(directory) / f"{n}.hea").is_file()]
    if len(missing) == 1:
        raise FileNotFoundError(f"record {missing[0]} is not in {directory}")
    if missing:
        raise FileNotFoundError(f"records {', '.join(missing)} are not in {directory}")


def has_records(directory):
    return Path(directory).is_dir() and any(Path(directory).glob("*.hea"))


@dataclass
class Record:
    """One lead of a record, with its reference beat annotations."""

    name: str
    signal: np.ndarray  # (n,) float64, mV; (n, 2) for MIXED_LEAD
    fs: int  # Hz
    lead: str
    ann_samples: np.ndarray  # (k,) int64, beat annotations only
    ann_symbols: np.ndarray  # (k,) str, MIT-BIH beat symbols
    excluded: np.ndarray  # (m, 2) int64 sample ranges EC57 leaves out (ventricular flutter)

    @property
    def ann_classes(self):
        return np.array([AAMI_CLASS[s] for s in self.ann_symbols])


def _flutter_ranges(samples, symbols, n):
    """Ranges between '[' (start of ventricular flutter/fibrillation) and ']' (its end)."""
    ranges, start = [], None
    for s, sym in zip(samples, symbols):
        if sym == "[":
            start = int(s)
        elif sym == "]" and start is not None:
            ranges.append((start, int(s)))
            start = None
    if start is not None:
        ranges.append((start, n))
    return np.array(ranges, dtype=np.int64).reshape(-1, 2)


OTHER_LEAD = "other"  # load_record's lead: the record's other channel than the one "MLII" reads
MIXED_LEAD = "mixed"  # load_record's lead: both channels, "MLII"'s first, to combine into virtual leads


def load_record(name, directory=None, lead="MLII", sampfrom=0, sampto=None):
    """Read record ``name`` from ``directory``: the ``lead`` channel (channel 0 if absent).

    ``lead=OTHER_LEAD``: the channel ``lead="MLII"`` does not read (V1 in most MIT-BIH
    records; V5 in 114, whose MLII is channel 1). The reference annotations serve both
    channels: they are recorded simultaneously. ``lead=MIXED_LEAD``: both channels as
    ``signal`` (n, 2), the one ``"MLII"`` reads first, to combine into leads the record does not
    have (``bench.robustness``'s virtual leads).
    """
    import wfdb

    base = str(data_dir(directory) / str(name))
    rec = wfdb.rdrecord(base, sampfrom=sampfrom, sampto=sampto)
    ann = wfdb.rdann(base, "atr", sampfrom=sampfrom, sampto=sampto, shift_samps=True)
    names = [s.strip() for s in rec.sig_name]
    primary = names.index("MLII") if "MLII" in names else 0
    if lead in (OTHER_LEAD, MIXED_LEAD):
        if len(names) < 2:
            raise ValueError(f"record {name} has one channel: no other lead")
        channel = 1 - primary if len(names) == 2 else (primary + 1) % len(names)
    else:
        channel = names.index(lead) if lead in names else 0
    sig = rec.p_signal[:, [primary, channel] if lead == MIXED_LEAD else channel].astype(np.float64)
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = np.asarray(ann.symbol)
    is_beat = np.isin(symbols, list(BEAT_SYMBOLS))
    return Record(
        name=str(name),
        signal=sig,
        fs=int(rec.fs),
        lead=MIXED_LEAD if lead == MIXED_LEAD else names[channel],
        ann_samples=samples[is_beat],
        ann_symbols=symbols[is_beat],
        excluded=_flutter_ranges(samples, symbols, len(sig)),
    )


def available_records(directory=None):
    d = data_dir(directory)
    return sorted(p.stem for p in d.glob("*.hea"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    dl = sub.add_parser("download", help="download MIT-BIH from PhysioNet (needs internet)")
    dl.add_argument("--data", default="data/mitdb", help="target directory")
    args = ap.parse_args(argv)
    if args.cmd == "download":
        print(f"downloading mitdb into {args.data} ...", flush=True)
        download(args.data)
        print("done; cite: Moody & Mark 2001; Goldberger et al. 2000 (ODC-By 1.0)")


def download(target):
    """MIT-BIH from PhysioNet into ``target``, all or nothing: the files arrive in a folder beside
    it and move in once every one has, so a cut connection leaves no half database behind."""
    import tempfile

    import wfdb

    from .cli import UsageError

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-partial-") as tmp:
        try:
            wfdb.dl_database("mitdb", dl_dir=tmp)
        except OSError as exc:  # requests' errors are OSErrors: offline, refused, a proxy, HTTP errors
            raise UsageError(f"cannot download mitdb from PhysioNet ({type(exc).__name__}): "
                             "is this machine online?") from None
        target.mkdir(exist_ok=True)
        for path in Path(tmp).iterdir():
            os.replace(path, target / path.name)


if __name__ == "__main__":
    from .cli import run_cli

    sys.exit(run_cli("python -m train.data", main))

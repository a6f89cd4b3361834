"""Writes the page's bundled strips: short lead-MLII excerpts of MIT-BIH DS2 records.

    .venv/bin/python service/static/demo/make_strips.py --data ../shared/data/mitdb

Run by hand (it needs wfdb and the database, which the service does not have); its output,
strips/*.json, is committed so that the page and its tests never read the database.
The excerpts were chosen for their ventricular beats; each file carries the reference
annotation counts so the page can show them beside the model's answer.
"""

import argparse
import json
from collections import Counter
from pathlib import Path

import wfdb

HERE = Path(__file__).resolve().parent
LEAD = "MLII"
# (record, start s, duration s, what a reader sees in it): DS2 records, never trained on
EXCERPTS = [
    ("200", 1305, 30, "ventricular bigeminy"),
    ("233", 1350, 30, "V beats, single and in couplets and triplets"),
    ("214", 1245, 30, "left bundle branch block with V beats"),
    ("221", 1020, 30, "atrial fibrillation with V beats"),
]
# MIT-BIH beat symbols -> AAMI EC57 classes (same mapping as train/data.py)
AAMI = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"),
        "F": "F", **dict.fromkeys("/fQ", "Q")}
SOURCE = {
    "database": "MIT-BIH Arrhythmia Database (PhysioNet)",
    "license": "ODC-By 1.0",
    "cite": ["Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. "
             "IEEE Eng Med Biol 20(3):45-50, 2001.",
             "Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet. "
             "Circulation 101(23):e215-e220, 2000."],
}


def excerpt(data_dir, record, start_s, duration_s, about):
    header = wfdb.rdheader(str(data_dir / record))
    fs = int(header.fs)
    first, last = start_s * fs, (start_s + duration_s) * fs
    signal = wfdb.rdrecord(str(data_dir / record), sampfrom=first, sampto=last,
                           channel_names=[LEAD]).p_signal[:, 0]
    ann = wfdb.rdann(str(data_dir / record), "atr", sampfrom=first, sampto=last - 1)
    classes = Counter(AAMI[s] for s in ann.symbol if s in AAMI)
    minutes, seconds = divmod(start_s, 60)
    return {
        "id": f"{record}-{start_s}",
        "title": f"Record {record}, {duration_s} s from {minutes}:{seconds:02d}: {about}",
        "record": record,
        "lead": LEAD,
        "start_s": start_s,
        "duration_s": duration_s,
        "sampling_rate": fs,
        "units": "mV",
        "reference_beats": dict(sorted(classes.items())),
        "source": SOURCE,
        # the database's resolution is 0.005 mV: three decimals lose nothing
        "signal_data": [round(float(v), 3) for v in signal],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="MIT-BIH folder (WFDB files)")
    args = parser.parse_args(argv)
    out = HERE / "strips"
    out.mkdir(exist_ok=True)
    index = []
    for record, start_s, duration_s, about in EXCERPTS:
        strip = excerpt(args.data, record, start_s, duration_s, about)
        name = f"{strip['id']}.json"
        (out / name).write_text(json.dumps(strip, separators=(",", ":")) + "\n")
        index.append({k: strip[k] for k in ("id", "title", "record", "duration_s",
                                             "sampling_rate", "reference_beats")} | {"file": name})
    (out / "index.json").write_text(json.dumps({"source": SOURCE, "strips": index}, indent=1) + "\n")
    print(f"{len(index)} strips in {out}")


if __name__ == "__main__":
    main()

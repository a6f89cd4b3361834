"""How a run's ``val_f1_V`` was measured, and on what data the run was trained.

Promotion (``convert/promote.py``) compares a candidate's ``val_f1_V`` with production's only
when both were measured the same way, on the same validation protocol: the same scheme (out
of fold over folds by record, or one holdout set of records), the same records in each group,
the same strip length and lead, and the same kind of training data. Seeds and network settings
are not part of it: they are what the comparison is for.

A protocol is a dict with a short stable ``id`` (e.g. ``oof5-mitdb-<hash>``: two runs measured
the same way get the same id) and a ``description`` a reader can check. Training logs it as the
run tags ``validation_protocol``, ``validation_protocol_description`` and ``training_data``,
and in its model card as ``validation_protocol``.
"""

import hashlib
import json
from pathlib import Path

from .data import DS1

LEAD = "MLII"  # train.data.load_record's lead: every run reads it
FULL_RECORD_SAMPLES = 650_000  # a whole MIT-BIH record: 30 min 5 s at 360 Hz
BUNDLED_EXCERPTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "mitdb"
# cards written before the protocol was recorded say neither their strip length nor their
# data; their runs were cut into the default 10-s strips
LEGACY_STRIP_SECONDS = 10.0

FULL = "mitdb"
TRAINING_DATA = {
    FULL: "the full MIT-BIH",
    "bundled-excerpts": "the bundled excerpts (tests/data/mitdb), not the full MIT-BIH",
    "partial-mitdb": "a directory without every DS1 record in full, not the full MIT-BIH",
    "unknown": "data the run did not record (it predates the tag), not known to be the full MIT-BIH",
}


def training_data(directory):
    """What ``directory`` holds: ``mitdb`` (every DS1 record in full), ``bundled-excerpts``
    (the excerpts committed under tests/data/mitdb) or ``partial-mitdb`` (anything else)."""
    directory = Path(directory).resolve()
    if directory == BUNDLED_EXCERPTS:
        return "bundled-excerpts"
    for name in DS1:
        if _samples(directory / f"{name}.hea") < FULL_RECORD_SAMPLES:
            return "partial-mitdb"
    return FULL


def _samples(header):
    """The number of samples a WFDB header announces (0 when there is no readable header)."""
    try:
        fields = header.read_text().split("\n", 1)[0].split()
        return int(fields[3])
    except (OSError, IndexError, ValueError):
        return 0


def protocol(folds, validation, strip_seconds, data):
    """The protocol of a run cross-fitted on ``folds`` (lists of records), or, when ``folds``
    is empty, validated on the holdout records ``validation``; ``data``: ``training_data(...)``."""
    groups = sorted(sorted(str(r) for r in group) for group in (folds or [validation]))
    scheme = f"oof{len(groups)}" if folds else "holdout"
    key = {"scheme": scheme, "groups": groups, "strip_seconds": float(strip_seconds) if strip_seconds else None,
           "lead": LEAD, "training_data": data}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return {"id": f"{scheme}-{data}-{digest}", "description": describe(key), **key}


def describe(key):
    records = sorted(r for group in key["groups"] for r in group)
    if set(records) == set(DS1):
        where = f"the {len(DS1)} DS1 records"
    else:
        where = f"{len(records)} record{'s' if len(records) > 1 else ''} ({' '.join(records)})"
    if key["scheme"] == "holdout":
        how = f"holdout F1 of V on {where}"
    else:
        how = f"out-of-fold F1 of V, {len(key['groups'])} folds by record over {where}"
    strips = f"{key['strip_seconds']:g}-s strips" if key["strip_seconds"] else "whole records"
    data = TRAINING_DATA.get(key["training_data"], key["training_data"])
    return f"{how}, {strips}, lead {key['lead']}, trained on {data}"


def tags(p):
    """The MLflow run tags of protocol ``p``."""
    return {"validation_protocol": p["id"], "validation_protocol_description": p["description"],
            "training_data": p["training_data"]}


def _legacy_data(records):
    # only a run on the whole database can have split all 22 DS1 records: the bundled
    # excerpts hold two of them
    return FULL if set(DS1) <= set(records) else "unknown"


def from_card(card):
    """The protocol a model card records, or, for a card written before it was recorded,
    the one its ``data_split`` (folds, validation records) implies."""
    if card.get("validation_protocol"):
        return card["validation_protocol"]
    split = card.get("data_split") or {}
    records = [*(split.get("train") or []), *(split.get("validation") or [])]
    return protocol(split.get("folds"), split.get("validation") or [], LEGACY_STRIP_SECONDS, _legacy_data(records))


def from_run(run):
    """The protocol of an MLflow run: its tags, else (a run from before the tags) its parameters."""
    t, p = run.data.tags, run.data.params
    if t.get("validation_protocol"):
        return {"id": t["validation_protocol"], "description": t.get("validation_protocol_description", ""),
                "training_data": t.get("training_data", "unknown")}
    folds = json.loads(p["fold_records"]) if p.get("fold_records") else None
    validation = (p.get("val_records") or "").split()
    strip = p.get("strip_seconds")
    strip = float(strip) if strip not in (None, "", "None") else None
    return protocol(folds, validation, strip, _legacy_data([*(p.get("train_records") or "").split(), *validation]))

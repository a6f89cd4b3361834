"""The release history of a model directory: every release that went into production, in order.

``models/ecg_nv_cnn.history/`` (beside ``models/ecg_nv_cnn/``, committed with it) holds one
folder per release with its card and ONNX graphs, and ``releases.json``, the releases in the
order they were installed. A rollback withdraws the release in production and installs the
one installed before it, so a second rollback goes one further back (8 -> 7 -> 6), never back
up to the withdrawn one. Version numbers come from here too: a new release's number is above
every number the history, the card in production and the registry have given.

The history replaces ``<output>.previous`` (one release deep): a directory that still has one
is migrated the first time a promotion or a rollback writes.
"""

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

INDEX = "releases.json"


class HistoryError(Exception):
    """The history cannot do what was asked: the message says why and what to do."""


def history_dir(output):
    output = Path(output)
    return output.with_name(output.name + ".history")


def legacy_previous(output):
    output = Path(output)
    return output.with_name(output.name + ".previous")


def now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_card(directory):
    path = Path(directory) / "model.json"
    return json.loads(path.read_text()) if path.exists() else None


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def release_graphs(card):
    """{file name: sha256} of every ONNX graph a card names (the model, a cascade's two)."""
    from service.model import graph_files

    return dict(graph_files(card).values())


def release_files(directory, card):
    """{name: bytes} of the release in ``directory``: the card and every ONNX graph it names."""
    names = [*release_graphs(card), "model.json"]
    return {name: (Path(directory) / name).read_bytes() for name in names}


def entry(card, folder, how):
    return {"version": str(card.get("version")), "folder": folder, "run_id": card.get("mlflow", {}).get("run_id"),
            "run_name": card.get("mlflow", {}).get("run_name"), "promoted_at": card.get("promoted_at"),
            "installed": how, "recorded_at": now(), "withdrawn_at": None}


def load(output):
    """The history's entries, oldest first (an empty list when there is none yet)."""
    index = history_dir(output) / INDEX
    return json.loads(index.read_text())["releases"] if index.exists() else []


def _save(output, entries):
    index = history_dir(output) / INDEX
    tmp = index.with_name(f".{INDEX}.tmp")
    tmp.write_text(json.dumps({"releases": entries}, indent=2) + "\n")
    os.replace(tmp, index)


def _write_folder(output, version, files):
    """The release's files into a new folder of the history (written whole, then renamed in)."""
    history = history_dir(output)
    history.mkdir(parents=True, exist_ok=True)
    folder, n = str(version), 1
    while (history / folder).exists():  # a version number seen twice (cards of hand-made releases)
        n += 1
        folder = f"{version}-{n}"
    staging = Path(tempfile.mkdtemp(dir=history, prefix=f".{folder}."))
    for name, data in files.items():
        (staging / name).write_bytes(data)
    staging.chmod(0o755)
    staging.rename(history / folder)
    return folder


def record(output, card, files, how):
    """Add a release (its ``card`` and ``files``, {name: bytes}) to the history."""
    entries = load(output)
    folder = _write_folder(output, card.get("version"), files)
    entries.append(entry(card, folder, how))
    _save(output, entries)
    return entries[-1]


def adopt(output):
    """Bring what is served but not yet in the history into it: first a legacy
    ``<output>.previous`` (then removed), then the release in ``output`` itself. Returns the
    list of what was adopted, for the commit."""
    output, adopted = Path(output), []
    previous = legacy_previous(output)
    if not load(output) and read_card(previous):
        card = read_card(previous)
        record(output, card, release_files(previous, card), f"migrated from {previous.name}")
        shutil.rmtree(previous)
        adopted.append(f"version {card.get('version')} from {previous.name}")
    current = read_card(output)
    if current and _position(load(output), current) is None:
        record(output, current, release_files(output, current), f"found in {output.name}")
        adopted.append(f"version {current.get('version')} in {output.name}")
    return adopted


def _position(entries, card):
    """The index of the live entry of the release ``card`` describes (None if it has none)."""
    for i in range(len(entries) - 1, -1, -1):
        e = entries[i]
        if e["withdrawn_at"] is None and e["version"] == str(card.get("version")) \
                and e["run_id"] == card.get("mlflow", {}).get("run_id"):
            return i
    return None


def next_version(output, registry_version=None):
    """A version above every one given so far: the registry's, production's card's, the history's."""
    numbers = [_number(registry_version), _number((read_card(output) or {}).get("version")) + 1]
    numbers += [_number(e["version"]) + 1 for e in load(output)]
    return str(max(1, *numbers))


def _number(version):
    try:
        return int(version)
    except (TypeError, ValueError):  # "candidate", a card without a version
        return 0


def rollback_plan(output):
    """(the entry in production, the entry to go back to) after ``adopt``; raises
    ``HistoryError`` when the history has no earlier live release."""
    output = Path(output)
    current = read_card(output)
    if current is None:
        raise HistoryError(f"no model in {output}: nothing to roll back")
    entries = load(output)
    here = _position(entries, current)
    earlier = [e for e in entries[:here] if e["withdrawn_at"] is None] if here is not None else []
    if not earlier:
        raise HistoryError(f"no release before version {current.get('version')} in {history_dir(output)}: "
                           "nothing to roll back to (older ones are in git history)")
    return entries[here], earlier[-1]


def target_files(output, target):
    """The files of history entry ``target``, each ONNX graph checked against its card's sha256."""
    folder = history_dir(output) / target["folder"]
    card = read_card(folder)
    if card is None:
        raise HistoryError(f"{folder}/model.json is missing: restore it from git history")
    try:
        graphs = release_graphs(card)
    except (KeyError, TypeError) as exc:
        raise HistoryError(f"{folder}/model.json names no ONNX graph ({exc!r}): restore it from git history") from None
    for name, want in graphs.items():
        if not (folder / name).exists() or sha256(folder / name) != want:
            raise HistoryError(f"{folder}/{name} does not match its card: restore it from git history")
    return card, release_files(folder, card)


def withdraw(output, withdrawn, reason):
    """Mark history entry ``withdrawn`` as no longer in production."""
    entries = load(output)
    for e in entries:
        if e["folder"] == withdrawn["folder"]:
            e["withdrawn_at"], e["withdrawn_because"] = now(), reason
    _save(output, entries)

"""Release safety: a promotion racing model loads never yields a half-written or mismatched
model; a load between the promotion's two renames retries instead of going degraded."""

import hashlib
import json
import threading

import onnx
import pytest

from convert.promote import install
from service.model import ModelUnavailable, ShaMismatch, load_model
from tests.service_helpers import model_copy


def _release(model_dir, tag):
    """The files of a release whose ONNX graphs (a cascade's too) say ``tag`` in their doc string."""
    card = json.loads((model_dir / "model.json").read_text())
    card["version"] = tag
    entries = [card["onnx"], *card["onnx"].get("cascade", {}).values()]
    files = {}
    for entry in entries:
        graph = onnx.load_from_string((model_dir / entry["file"]).read_bytes())
        graph.doc_string = tag
        files[entry["file"]] = graph.SerializeToString()
        entry["sha256"] = hashlib.sha256(files[entry["file"]]).hexdigest()
    return {**files, "model.json": json.dumps(card).encode()}


@pytest.fixture
def releases(tmp_path):
    d = model_copy(tmp_path)
    return d, {tag: _release(d, tag) for tag in ("release-a", "release-b")}


def test_loads_racing_promotions_always_pair_the_card_with_its_own_onnx(releases):
    model_dir, files = releases
    install(files["release-a"], model_dir)
    stop = threading.Event()
    promotions = []

    def promote_back_and_forth():
        while not stop.is_set():
            for tag in ("release-b", "release-a"):
                install(files[tag], model_dir)
                promotions.append(tag)
                stop.wait(0.01)

    promoter = threading.Thread(target=promote_back_and_forth, daemon=True)
    promoter.start()
    loaded, refused = [], []
    try:
        for _ in range(40):
            try:
                m = load_model(model_dir)
            except ShaMismatch as exc:  # only ever a mid-promotion pair, and only after retries
                refused.append(str(exc))
                continue
            # the card's version and the graph the session runs come from one release
            assert m.session.get_modelmeta().description == m.version
            loaded.append(m.version)
    finally:
        stop.set()
        promoter.join(timeout=30)
    assert len(promotions) >= 10, "the promotions must really overlap the loads"
    assert set(loaded) == {"release-a", "release-b"}
    assert len(refused) <= 2, refused  # retried: a load lands between renames only rarely


def test_a_mismatched_pair_is_refused_not_served(releases):
    model_dir, files = releases
    install(files["release-a"], model_dir)
    # the state a reader sees between the two renames: release-b's ONNX, release-a's card
    (model_dir / "model.onnx").write_bytes(files["release-b"]["model.onnx"])
    with pytest.raises(ModelUnavailable, match="sha256 of model.onnx"):
        load_model(model_dir)


def test_a_load_during_a_promotion_waits_for_the_card(releases, monkeypatch):
    model_dir, files = releases
    install(files["release-a"], model_dir)
    for name, blob in files["release-b"].items():  # between renames: the graphs are new, the card not yet
        if name != "model.json":
            (model_dir / name).write_bytes(blob)
    import service.model as service_model

    def finish_promotion(seconds):  # the promoter renames the card while the loader waits
        (model_dir / "model.json").write_bytes(files["release-b"]["model.json"])

    monkeypatch.setattr(service_model.time, "sleep", finish_promotion)
    assert load_model(model_dir).version == "release-b"

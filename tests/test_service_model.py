"""A missing, corrupt or incompatible model: the service starts degraded, says why, and
predictions answer 503."""

import hashlib
import json
import shutil

import pytest

from service import config, create_app
from service.model import ModelUnavailable, load_model
from tests.service_helpers import MODEL_DIR, PAYLOAD, PREDICT, edit_card, model_copy


def _replace_run_graph(d, blob):
    """Put ``blob`` in place of the graph the service runs first (a cascade's first member,
    else model.onnx), with a card that vouches for it."""
    card = json.loads((d / "model.json").read_text())
    cascade = card["decision"].get("cascade") is not None
    (d / (card["onnx"]["cascade"]["first"] if cascade else card["onnx"])["file"]).write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    edit_card(d, lambda c: (c["onnx"]["cascade"]["first"] if cascade else c["onnx"]).update(sha256=digest))


def _damage_onnx_keep_hash(d):
    _replace_run_graph(d, b"not an onnx graph")


def _pooling(**changes):
    """A damage: the card's decision pools beats with a valid setting but for ``changes``."""
    setting = {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216], **changes}
    return lambda d: edit_card(d, lambda c: c["decision"].update(pooling=setting))


DAMAGES = {
    "no folder": (lambda d: shutil.rmtree(d), "no model card"),
    "no card": (lambda d: (d / "model.json").unlink(), "no model card"),
    "card not JSON": (lambda d: (d / "model.json").write_text("{oops"), "unreadable"),
    "card not an object": (lambda d: (d / "model.json").write_text("[1]"), "not a JSON object"),
    "no ONNX file": (lambda d: (d / "model.onnx").unlink(), "ONNX file missing"),
    "sha256 mismatch": (lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes() + b"\0"), "sha256"),
    "unknown preprocessing version": (
        lambda d: edit_card(d, lambda c: c["preprocessing"].update(version="nv-pre-99")), "nv-pre-99"),
    "card without decision": (lambda d: edit_card(d, lambda c: c.pop("decision")), "decision"),
    "features not its version's": (
        lambda d: edit_card(d, lambda c: c["preprocessing"]["rr_features"].reverse()), "features for"),
    "threshold out of range": (
        lambda d: edit_card(d, lambda c: c["decision"].update(threshold=1.5)), "threshold"),
    "ONNX bytes not a model": (_damage_onnx_keep_hash, "ONNX Runtime cannot load"),
    "RuleGuard setting unknown here": (
        lambda d: edit_card(d, lambda c: c["decision"]["ruleguard"].update(max_p_wave_mv=0.1)), "max_p_wave_mv"),
    "decision part unknown here": (
        lambda d: edit_card(d, lambda c: c["decision"].update(smoothing={"beats": 3})), "smoothing"),
    "pooling setting unknown here": (_pooling(lead=2), "lead"),
    "pooling core samples not integers": (_pooling(core_samples=[144.0, 216.0]), "integers"),
    "pooling bound a string": (_pooling(min_corr="0.9"), "numbers"),
    "pooling size not a positive integer": (_pooling(pool_size_beats=0), "pool_size"),
    "pooling size so large a request's work grows with its beats squared": (
        _pooling(pool_size_beats=10**12), "pool_size"),
    "pooling size a float": (_pooling(pool_size_beats=4096.0), "pool_size"),
    "pooling core off the window": (_pooling(core_samples=[144, 400]), "pooling"),
}


@pytest.fixture(params=sorted(DAMAGES))
def broken(request, tmp_path):
    damage, reason = DAMAGES[request.param]
    d = model_copy(tmp_path)
    damage(d)
    app = create_app({"TESTING": True, "MODEL_DIR": str(d)})
    return app, reason


def test_broken_model_starts_degraded_with_the_reason(broken):
    app, reason = broken
    r = app.test_client().get("/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "degraded" and body["model_loaded"] is False
    assert reason in body["reason"]
    assert isinstance(body["version"], str) and body["timestamp"]


def test_broken_model_predictions_answer_503_with_detail(broken):
    app, reason = broken
    r = app.test_client().post(PREDICT, json=PAYLOAD)
    assert r.status_code == 503
    assert r.headers["Content-Type"] == "application/json"
    assert reason in r.get_json()["detail"]


def test_degraded_service_still_serves_root_docs_and_metrics(broken):
    c = broken[0].test_client()
    assert c.get("/").status_code == 200
    assert c.get("/openapi.json").status_code == 200
    assert "ecg_model_loaded 0.0" in c.get("/metrics").get_data(as_text=True)


def test_degraded_service_still_validates_before_answering_503(broken):
    r = broken[0].test_client().post(PREDICT, data="{", content_type="application/json")
    assert r.status_code == 400


def test_wrong_input_names_are_refused(tmp_path):
    pytest.importorskip("onnx")  # in the training venv only
    from onnx import TensorProto, helper

    d = model_copy(tmp_path)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["p_v"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("p_v", TensorProto.FLOAT, [None, 1])])
    blob = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    _replace_run_graph(d, blob)
    with pytest.raises(ModelUnavailable, match="expected inputs beat, rr"):
        load_model(d)


def test_the_shipped_model_loads_and_matches_its_card():
    model = load_model(MODEL_DIR)
    card = json.loads((MODEL_DIR / "model.json").read_text())
    assert model.version == card["version"]
    assert model.threshold == card["decision"]["threshold"]
    assert hashlib.sha256((MODEL_DIR / card["onnx"]["file"]).read_bytes()).hexdigest() == card["onnx"]["sha256"]


def test_session_uses_one_intra_op_thread_by_default():
    model = load_model(MODEL_DIR)
    opts = model.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1


def test_config_reads_the_environment_with_defaults():
    defaults = config.from_env({})
    assert defaults["MODEL_DIR"] == str(config.DEFAULT_MODEL_DIR)
    assert defaults["MAX_CONTENT_LENGTH"] == 32 * 1024 * 1024
    assert defaults["LOG_LEVEL"] == "INFO" and defaults["CORS_ORIGINS"] == ["*"]
    assert defaults["ORT_INTRA_OP_THREADS"] == 1 and defaults["API_KEY"] is None
    custom = config.from_env({"ECG_MODEL_DIR": "/m", "ECG_MAX_BODY_MB": "2", "ECG_LOG_LEVEL": "debug",
                              "ECG_CORS_ORIGINS": "https://a.org, https://b.org", "ECG_ORT_THREADS": "2"})
    assert custom["MODEL_DIR"] == "/m" and custom["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024
    assert custom["LOG_LEVEL"] == "DEBUG" and custom["CORS_ORIGINS"] == ["https://a.org", "https://b.org"]
    assert custom["ORT_INTRA_OP_THREADS"] == 2


def test_model_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ECG_MODEL_DIR", str(tmp_path / "nowhere"))
    app = create_app({"TESTING": True})
    body = app.test_client().get("/health").get_json()
    assert app.config["MODEL_DIR"] == str(tmp_path / "nowhere")
    assert body["status"] == "degraded" and "no model card" in body["reason"]
    assert str(tmp_path) not in body["reason"]  # the reason reaches clients: no server paths


def test_health_shows_the_cards_test_figures_not_its_training_curves():
    card = json.loads((MODEL_DIR / "model.json").read_text())
    assert any(k.startswith("member") for k in card["metrics"])  # the card keeps them
    shown = create_app({"TESTING": True}).test_client().get("/health").get_json()["model"]["metrics"]
    assert shown["test_f1_V"] == card["metrics"]["test_f1_V"]
    assert shown["val_f1_V"] == card["metrics"]["val_f1_V"]
    assert shown["e2e_strip_f1_V"] == card["metrics"]["e2e_strip_f1_V"]
    assert not [k for k in shown if k.startswith("member") or k in ("best_epoch", "train_minutes")]


def test_health_shows_only_its_listed_figures_of_whatever_a_card_holds():
    from service.model import HEALTH_METRICS, LoadedModel

    card = json.loads((MODEL_DIR / "model.json").read_text())
    card["metrics"] = {"val_f1_V": 0.79, "test_f1_V": 0.9, "val_f1_V_some_experiment": 0.80,
                       "fold0_inner1_val_loss": 0.1, "new_training_curve": 0.3}
    shown = LoadedModel(card=card, session=None).summary()["metrics"]
    assert shown == {"test_f1_V": 0.9, "val_f1_V": 0.79}
    assert set(HEALTH_METRICS) <= set(json.loads((MODEL_DIR / "model.json").read_text())["metrics"])


@pytest.mark.parametrize("version", ["nv-pre-1", "nv-pre-2"])
def test_a_model_of_a_previous_preprocessing_version_is_still_served(version):
    # nv-pre-2 appended feature columns: an nv-pre-1 network gets the first 10; nv-pre-3 added the
    # upright step, which an nv-pre-2 network (release 10) does not get
    from pathlib import Path

    old = Path(__file__).parent / "data" / f"model_{version.replace('-', '_')}"
    app = create_app({"TESTING": True, "MODEL_DIR": str(old)})
    r = app.test_client().post(PREDICT, json=PAYLOAD)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["metadata"]["preprocessing_version"] == version
    assert body["total_beats"] == 14 and body["ventricular_beats"] >= 1


@pytest.mark.parametrize("version", ["nv-pre-2", "nv-pre-3"])
def test_an_inverted_request_is_turned_upright_only_for_a_card_whose_version_does(tmp_path, version):
    # nv-pre-3 networks learned every lead upright; nv-pre-2's learned each lead as sent
    from ecg.pipeline import TURNED_UPRIGHT

    folder = model_copy(tmp_path)
    edit_card(folder, lambda card: card["preprocessing"].update(version=version))
    client = create_app({"TESTING": True, "MODEL_DIR": str(folder)}).test_client()
    inverted = {**PAYLOAD, "signal_data": [-v for v in PAYLOAD["signal_data"]]}
    bodies = [client.post(PREDICT, json=p).get_json() for p in (PAYLOAD, inverted)]
    assert bodies[1]["metadata"]["preprocessing_version"] == version
    confidences = [[b["confidence"] for b in body["beat_predictions"]] for body in bodies]
    assert (confidences[0] == confidences[1]) == (version in TURNED_UPRIGHT)
    assert [body["metadata"]["turned_upright"] for body in bodies] == [False, version in TURNED_UPRIGHT]
    # an MLII lead pointing down is said, whatever the model does with it
    said = [any("point down" in w for w in body["metadata"]["warnings"]) for body in bodies]
    assert said == [False, True]


def test_only_a_lead_that_points_up_in_everyone_is_warned_of_pointing_down():
    from service.inference import polarity_warning

    assert "'ECG II'" in polarity_warning("ECG II", -1.0)
    assert polarity_warning("MLII", 1.0) is None
    assert polarity_warning("V1", -1.0) is None and polarity_warning("aVR", -1.0) is None

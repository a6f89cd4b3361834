"""Promotion compares like with like, and cannot leave a worse model in production.

The README's path on a fresh clone (``make demo``, then its ``convert.promote`` commands) is
run for real against a copy of the committed models/ in a temporary git repository: the demo
model, trained on the bundled excerpts and measured on one record, is refused, and models/ is
left byte for byte as it was. The rest checks the gate's rules one by one, version numbers,
and the release history that rollback walks down.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convert import releases
from convert.promote import DS2_GUARD_TOLERANCE, gate
from train import protocol
from train.data import DS1

PROJECT = Path(__file__).resolve().parent.parent
MODELS = PROJECT / "models"
PRODUCTION = json.loads((MODELS / "ecg_nv_cnn" / "model.json").read_text())
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


def make_demo_command():
    """``make demo``'s training command, read from the Makefile (without ``$(PY)``)."""
    lines = (PROJECT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n")[1:]
    recipe = ""
    for line in lines:
        recipe += line.strip().rstrip("\\") + " "
        if not line.rstrip().endswith("\\"):
            break
    words = shlex.split(recipe)
    return words[words.index("-m"):]


def tree(path):
    """Every file under ``path``: {relative path: bytes}."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


def git_repo_with_models(root):
    """A git repository holding a copy of the committed models/ (production and .previous)."""
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    shutil.copytree(MODELS, root / "models")
    subprocess.run([*GIT, "-C", str(root), "add", "models"], check=True)
    subprocess.run([*GIT, "-C", str(root), "commit", "-q", "-m", "production as committed"], check=True)
    return root


def git(root, *args):
    return subprocess.run([*GIT, "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo run as ``make demo`` trains it (one epoch instead of three), into a fresh MLflow store."""
    pytest.importorskip("tensorflow")
    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "PYTHONPATH": str(PROJECT),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("ECG_DATA_DIR", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    command = [sys.executable, *make_demo_command(), "--epochs", "1", "--cache", str(tmp / "cache")]
    assert "--data" in command and "demo-on-bundled-excerpts" in command
    trained = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    return {"tmp": tmp, "env": env, "train_stderr": trained.stderr}


def test_the_readme_path_cannot_replace_production_with_the_demo_model(demo, tmp_path):
    import mlflow

    # the demo run says what it was trained on and how it was measured; TensorFlow kept quiet
    client = mlflow.MlflowClient(demo["env"]["MLFLOW_TRACKING_URI"])
    run = client.search_runs([client.get_experiment_by_name("deteccion_arritmias_ecg").experiment_id])[0]
    assert run.data.tags["training_data"] == "bundled-excerpts"
    assert run.data.tags["validation_protocol"].startswith("holdout-bundled-excerpts-")
    for noise in ("oneDNN", "use_unbounded_threadpool", "absl::InitializeLog", "cpu_feature_guard"):
        assert noise not in demo["train_stderr"], noise

    repo = git_repo_with_models(tmp_path / "clone")
    before, head = tree(repo / "models"), git(repo, "rev-parse", "HEAD")
    output = repo / "models" / "ecg_nv_cnn"
    for readme_command in (["--dry-run"], ["--commit"]):
        r = subprocess.run([sys.executable, "-m", "convert.promote", *readme_command, "--output", str(output)],
                           cwd=PROJECT, env=demo["env"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 2, r.stdout + r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        # the refusal names both protocols and the training data
        production_protocol = protocol.from_card(PRODUCTION)["id"]
        assert production_protocol in r.stderr and run.data.tags["validation_protocol"] in r.stderr
        assert "bundled excerpts" in r.stderr and "nothing written" in r.stderr
        # both models' figures were printed, production's out of fold over 22 patients among them
        assert f"val_f1_V {run.data.metrics['val_f1_V']:.4f}" in r.stdout
        assert f"val_f1_V {PRODUCTION['metrics']['val_f1_V']:.4f}" in r.stdout
        assert "verdict: the candidate loses" in r.stdout
        assert tree(repo / "models") == before
        assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""


def release_before_production():
    """(version, {file: bytes}) of the release before production, from the committed models/:
    its legacy ``.previous`` folder, or the release history."""
    previous = MODELS / "ecg_nv_cnn.previous"
    if previous.exists():
        card = json.loads((previous / "model.json").read_text())
        return card["version"], tree(previous)
    entries = releases.load(MODELS / "ecg_nv_cnn")
    at = [e["version"] for e in entries].index(PRODUCTION["version"])
    folder = releases.history_dir(MODELS / "ecg_nv_cnn") / entries[at - 1]["folder"]
    return entries[at - 1]["version"], tree(folder)


def test_forced_promotion_numbers_up_and_rollback_walks_down_the_history(demo, tmp_path, monkeypatch, capsys):
    import mlflow

    from convert.promote import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", demo["env"]["MLFLOW_TRACKING_URI"])
    for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(k, "t" if k.endswith("NAME") else "t@t")
    monkeypatch.delenv("ECG_DATA_DIR", raising=False)
    repo = git_repo_with_models(tmp_path / "clone")
    output = repo / "models" / "ecg_nv_cnn"
    production = PRODUCTION["version"]
    forced = str(int(production) + 1)
    before_version, before_tree = release_before_production()
    original = tree(MODELS / "ecg_nv_cnn")
    data = ["--data", str(PROJECT / "tests" / "data" / "mitdb")]

    assert main(["--output", str(output), *data, "--force", "--commit"]) == 0
    card = json.loads((output / "model.json").read_text())
    # a fresh MLflow store registers version 1; the release number still goes up from production's
    assert card["mlflow"]["registry_version"] == "1" and card["version"] == forced
    assert [e["version"] for e in releases.load(output)][-3:] == [before_version, production, forced]
    assert not (repo / "models" / "ecg_nv_cnn.previous").exists()  # migrated into the history
    # the override is on record: in the card and in the commit
    assert card["gate"]["forced"] and any("bundled excerpts" in r for r in card["gate"]["reasons"])
    assert git(repo, "log", "-1", "--format=%s").startswith("Deploy: MLflow model (F1-V: ")
    assert "Promoted with --force although" in git(repo, "log", "-1", "--format=%b")
    assert git(repo, "status", "--porcelain") == ""

    capsys.readouterr()
    assert main(["--output", str(output), "--rollback", "--commit"]) == 0
    assert tree(output) == original
    assert git(repo, "log", "-1", "--format=%s").startswith(f"Rollback: ecg_nv_cnn version {forced} -> {production}")
    assert git(repo, "status", "--porcelain") == ""
    # the fresh registry never had production's run: @production no longer names the withdrawn demo model
    assert "@production removed" in capsys.readouterr().out
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.MlflowClient(demo["env"]["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(
            "ECG_Arritmias_NvsV", "production")

    assert main(["--output", str(output), "--rollback", "--dry-run"]) == 0
    assert f"would roll back from version {production}" in capsys.readouterr().out and tree(output) == original
    assert main(["--output", str(output), "--rollback"]) == 0
    assert tree(output) == before_tree  # down again, never back up
    assert json.loads((output / "model.json").read_text())["version"] == before_version

    assert main(["--output", str(output), *data, "--force", "--no-registry"]) == 0
    assert int(json.loads((output / "model.json").read_text())["version"]) == int(forced) + 1


# --- the gate's rules, on the production card and candidates measured like it or not ---------

def candidate(**changes):
    """A candidate measured exactly as production was, with production's figures, then ``changes``."""
    card = {"validation_protocol": protocol.from_card(PRODUCTION), "data_split": PRODUCTION["data_split"],
            "metrics": {"val_f1_V": PRODUCTION["metrics"]["val_f1_V"], "e2e_f1_V": PRODUCTION["metrics"]["e2e_f1_V"]}}
    for key, value in changes.items():
        if key in ("val_f1_V", "e2e_f1_V"):
            card["metrics"][key] = value
        else:
            card[key] = value
    card["metrics"] = {k: v for k, v in card["metrics"].items() if v is not None}
    return card


def test_a_candidate_measured_like_production_wins_only_when_not_worse():
    val = PRODUCTION["metrics"]["val_f1_V"]
    assert gate(candidate(val_f1_V=val + 0.001), PRODUCTION, "val_f1_V") == []
    assert gate(candidate(), PRODUCTION, "val_f1_V") == []  # a tie does not lose
    [reason] = gate(candidate(val_f1_V=val - 0.001), PRODUCTION, "val_f1_V")
    assert f"below production's {val:.4f} on the same protocol" in reason


def test_ds2_guards_against_a_drop_and_never_ranks():
    val, e2e = PRODUCTION["metrics"]["val_f1_V"], PRODUCTION["metrics"]["e2e_f1_V"]
    # better on DS2 does not rescue a lower validation figure
    assert gate(candidate(val_f1_V=val - 0.001, e2e_f1_V=0.99), PRODUCTION, "val_f1_V")
    assert gate(candidate(e2e_f1_V=e2e - DS2_GUARD_TOLERANCE + 0.001), PRODUCTION, "val_f1_V") == []
    [reason] = gate(candidate(e2e_f1_V=e2e - DS2_GUARD_TOLERANCE - 0.001), PRODUCTION, "val_f1_V")
    assert f"more than {DS2_GUARD_TOLERANCE} below production's {e2e:.4f}" in reason
    [reason] = gate(candidate(e2e_f1_V=None), PRODUCTION, "val_f1_V")
    assert "no DS2 e2e_f1_V" in reason
    other_tests = {**PRODUCTION["data_split"], "test": ["233", "100"]}
    [reason] = gate(candidate(data_split=other_tests), PRODUCTION, "val_f1_V")
    assert "other records than production's DS2 test set" in reason


def test_another_protocol_or_other_data_is_refused_naming_both():
    holdout = protocol.protocol(None, ["106", "114", "116", "205", "215", "223", "230"], 10.0, "mitdb")
    [reason] = gate(candidate(validation_protocol=holdout, val_f1_V=0.95), PRODUCTION, "val_f1_V")
    assert holdout["id"] in reason and protocol.from_card(PRODUCTION)["id"] in reason
    assert holdout["description"] in reason and "not comparable" in reason
    folds = PRODUCTION["data_split"]["folds"]
    partial = protocol.protocol(folds, [], 10.0, "partial-mitdb")
    reasons = gate(candidate(validation_protocol=partial), PRODUCTION, "val_f1_V")
    assert any("never promoted without --force" in r for r in reasons)
    # with no production at all, the training data still decides
    assert gate(candidate(), None, "val_f1_V") == []
    assert gate(candidate(validation_protocol=partial), None, "val_f1_V")


def test_the_protocol_id_depends_on_how_val_f1_V_was_measured_only():
    derived = protocol.from_card(PRODUCTION)  # the card predates the tag: from its data_split
    assert derived["id"].startswith("oof5-mitdb-")
    assert "5 folds by record over the 22 DS1 records, 10-s strips, lead MLII" in derived["description"]
    folds = PRODUCTION["data_split"]["folds"]
    shuffled = [list(reversed(f)) for f in reversed(folds)]
    assert protocol.protocol(shuffled, [], 10.0, "mitdb")["id"] == derived["id"]
    assert protocol.protocol(folds, [], 5.0, "mitdb")["id"] != derived["id"]
    assert protocol.protocol(folds, [], 10.0, "partial-mitdb")["id"] != derived["id"]
    assert protocol.protocol(folds[1:], [], 10.0, "mitdb")["id"] != derived["id"]
    holdout_200, holdout_201 = (protocol.protocol(None, [r], 10.0, "mitdb")["id"] for r in ("200", "201"))
    assert holdout_200 != holdout_201


def test_training_data_is_the_full_database_only_when_every_ds1_record_is_whole(tmp_path, fixture_dir):
    assert protocol.training_data(fixture_dir) == "bundled-excerpts"
    copy = tmp_path / "copy"
    shutil.copytree(fixture_dir, copy)
    assert protocol.training_data(copy) == "partial-mitdb"
    full = tmp_path / "full"
    full.mkdir()
    for name in DS1:  # headers of whole records (the check reads no signal)
        (full / f"{name}.hea").write_text(f"{name} 2 360 650000\n")
    assert protocol.training_data(full) == "mitdb"
    (full / f"{DS1[0]}.hea").write_text(f"{DS1[0]} 2 360 64800\n")  # one record cut short
    assert protocol.training_data(full) == "partial-mitdb"


def test_version_numbers_never_go_backwards(tmp_path):
    output = tmp_path / "models" / "ecg_nv_cnn"
    assert releases.next_version(output, None) == "1"
    shutil.copytree(MODELS / "ecg_nv_cnn", output)
    production = int(PRODUCTION["version"])  # a fresh registry's 1 under production's number
    assert releases.next_version(output, "1") == str(production + 1)
    assert releases.next_version(output, "12") == "12"
    card = {**PRODUCTION, "version": "15"}
    releases.record(output, card, {"model.json": json.dumps(card).encode()}, "test")
    assert releases.next_version(output, "3") == "16"

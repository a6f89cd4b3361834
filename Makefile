# Two commands on a fresh machine with Python 3.11: `make serve` (or `make demo`) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: serve demo lint test train detector-eval mlflow-ui bench clean

# The full environment (training, conversion, tests); rebuilt when the pins change.
$(VENV)/.installed: requirements-api.txt requirements-train.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-train.txt
	touch $@

# Serving only: its own venv from requirements-api.txt alone, as the Docker image has it
# (--clear: a package dropped from the pins must not linger from an older build).
.venv-api/.installed: requirements-api.txt
	$(PYTHON) -m venv --clear .venv-api
	.venv-api/bin/python -m pip install --quiet --upgrade pip
	.venv-api/bin/python -m pip install --quiet -r requirements-api.txt
	touch $@

# The Flask + ONNX Runtime service on http://localhost:7860 (PORT, WEB_CONCURRENCY... in gunicorn.conf.py).
serve: .venv-api/.installed
	.venv-api/bin/gunicorn -c gunicorn.conf.py wsgi:app

# Train a small model on the bundled MIT-BIH excerpts into the local MLflow store.
demo: $(VENV)/.installed
	$(PY) -m train --data tests/data/mitdb --train-records 119 208 --val-records 200 \
	    --test-records 233 100 --folds 1 --epochs 3 --run-name demo-on-bundled-excerpts

# ruff's rules: pyproject.toml ([tool.ruff]); it only reports, it rewrites nothing
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# the linter first: a tree it rejects is not tested
test: lint
	$(PY) -m pytest -q

# Full training on MIT-BIH (DS1 -> DS2); ECG_DATA_DIR or DATA=... points at the database.
train: $(VENV)/.installed
	$(PY) -m train $(if $(DATA),--data $(DATA))

detector-eval: $(VENV)/.installed
	$(PY) -m train.detector_eval $(if $(DATA),--data $(DATA))

# ONNX serving against TensorFlow, side by side: bench/results.json and bench/results.md.
# Needs wrk (apt-get install -y wrk) for the HTTP part; BENCH_ARGS=--accuracy adds DS2 through the API.
bench: $(VENV)/.installed
	$(PY) -m bench $(BENCH_ARGS)

mlflow-ui: $(VENV)/.installed
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000

clean:
	rm -rf $(VENV) .venv-api cache .pytest_cache

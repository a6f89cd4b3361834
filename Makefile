# Two commands on a fresh machine with Python 3.11: `make demo` (later `make serve`) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test train detector-eval mlflow-ui clean

# The full environment (training, conversion, tests); rebuilt when the pins change.
$(VENV)/.installed: requirements-api.txt requirements-train.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-train.txt
	touch $@

# Train a small model on the bundled MIT-BIH excerpts into the local MLflow store.
demo: $(VENV)/.installed
	$(PY) -m train --data tests/data/mitdb --train-records 119 208 --val-records 200 \
	    --test-records 233 100 --epochs 3 --run-name demo-on-bundled-excerpts

test: $(VENV)/.installed
	$(PY) -m pytest -q

# Full training on MIT-BIH (DS1 -> DS2); ECG_DATA_DIR or DATA=... points at the database.
train: $(VENV)/.installed
	$(PY) -m train $(if $(DATA),--data $(DATA))

detector-eval: $(VENV)/.installed
	$(PY) -m ecg.detector_eval $(if $(DATA),--data $(DATA))

mlflow-ui: $(VENV)/.installed
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000

clean:
	rm -rf $(VENV) cache .pytest_cache

"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

Every operation of /openapi.json gets generated requests, valid and invalid, in-process
through the WSGI app. Each response must be no 5xx, have a documented status, content
type and headers, and match the documented schema; a schema-valid body must be accepted
(201), or refused with the documented domain 422 (under 5 s at its rate, no beat in it),
and a schema-invalid one refused with a 4xx.

Bounded for CI (FUZZ_EXAMPLES per operation, ECG_FUZZ_EXAMPLES overrides it, ~1 min);
``pytest -m slow tests/test_fuzz_openapi.py`` runs SLOW_EXAMPLES per operation, and
docs/RELIABILITY.md gives the schemathesis CLI run against a real gunicorn.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from service import create_app
from tests.service_helpers import MODEL_DIR

FUZZ_EXAMPLES = int(os.environ.get("ECG_FUZZ_EXAMPLES", "150"))
SLOW_EXAMPLES = 1000

# 422 is a documented answer to a schema-valid body: JSON Schema cannot say "at least
# 5 s at the given sampling_rate", nor "a heartbeat must be in it"
CONFIG = SchemathesisConfig.from_str("""
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "422"]
""")

APP = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING"})
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP, config=CONFIG)

SEEN = {"cases": 0, "5xx": 0}


@pytest.fixture(autouse=True)
def _slow_only_when_asked(request):
    if request.node.get_closest_marker("slow") and "slow" not in request.config.getoption("markexpr"):
        pytest.skip("long fuzzing: run with -m slow")


def _fuzz(case):
    response = case.call_and_validate()
    SEEN["cases"] += 1
    SEEN["5xx"] += response.status_code >= 500
    return response


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    _fuzz(case)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=SLOW_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document_long(case):
    _fuzz(case)


def test_the_fuzzing_ran_and_found_no_server_error():
    # runs after the fuzz tests above in this module's order
    print(f"fuzz cases run: {SEEN['cases']}, server errors: {SEEN['5xx']}")
    assert SEEN["cases"] >= 4, SEEN  # at least one case per operation
    assert SEEN["5xx"] == 0, SEEN


def test_the_document_describes_every_error_answer():
    doc = APP.test_client().get("/openapi.json").get_json()
    responses = doc["paths"]["/api/v1/predictions/"]["post"]["responses"]
    for status in ("201", "400", "401", "413", "415", "422", "503"):
        assert status in responses, status
    for status in ("400", "401", "413", "415", "422", "503"):
        schema_ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert schema_ref.endswith("/Error")
    signal = doc["components"]["schemas"]["PredictionRequest"]["properties"]["signal_data"]
    assert signal["minItems"] == 500 and signal["maxItems"] == 1_800_000
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"

"""Optional API key for private deployments (a private Hugging Face Space, for instance).

Off unless ``ECG_API_KEY`` is set. Then every prediction must carry the key in an
``X-API-Key`` header, else 401 with a JSON ``detail``; /health, /, /metrics, the
documentation and the demo page stay open (health checks and browsers have no key).
"""

import hmac

from flask import current_app, request
from flask_smorest import abort

HEADER = "X-API-Key"
# the OpenAPI description of the key: optional in the document ({} = no key needed),
# because whether it is required depends on the deployment's environment
SECURITY_SCHEME = {"type": "apiKey", "in": "header", "name": HEADER,
                   "description": "Only when the service runs with ECG_API_KEY set."}
PROTECTED_PREFIX = "/api/"


def _check_key():
    expected = current_app.config.get("API_KEY")
    if not expected or request.method == "OPTIONS" or not request.path.startswith(PROTECTED_PREFIX):
        return None  # no key configured, a CORS preflight, or an open route
    given = request.headers.get(HEADER, "")
    # constant-time comparison: the answer's timing must not leak the key
    if not hmac.compare_digest(given.encode(), expected.encode()):
        abort(401, detail=f"This service needs an API key: send it in the {HEADER} header."
                          if not given else f"The {HEADER} header does not hold a valid key.")
    return None


def init_app(app):
    app.before_request(_check_key)

"""ECG arrhythmia detection service (N/V per beat): Flask + ONNX Runtime.

``create_app()`` builds the app; ``wsgi.py`` exposes it to gunicorn. Each worker process
loads its own ONNX Runtime session(s) once, here, at start-up.
"""

from flask import Flask
from flask_cors import CORS

from . import auth, config, jsonio, metrics, model, requestlog, schemas
from .api import Api

__version__ = "0.1.0"


def _openapi_config(app):
    app.config.update(
        API_TITLE="ECG arrhythmia detection API (N / V beats)",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/static/swagger-ui/",  # vendored: no CDN
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None, "deepLinking": True},
        OPENAPI_REDOC_PATH="redoc",
        OPENAPI_REDOC_URL="/static/redoc/redoc.standalone.js",
        API_SPEC_OPTIONS={"info": {"description": (
            "Classifies every heartbeat of one ECG lead as N (normal and other non-ventricular "
            "beats) or V (ventricular ectopic), with ONNX Runtime. Send the lead in millivolts "
            "at 100-1000 Hz; the service resamples to 360 Hz, detects R peaks and returns one "
            "prediction per beat. " + schemas.CONFIDENCE_DOC)}},
    )


def _vary_on_origin(response):
    """Every answer depends on the request's Origin (CORS headers come only with one): a
    shared cache must not hand a browser the copy it stored for a script."""
    # flask-cors adds it itself when several origins are allowed
    if not any("origin" in v.lower() for v in response.headers.getlist("Vary")):
        response.headers.add("Vary", "Origin")
    return response


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    app.json = jsonio.OrjsonProvider(app)
    app.config.setdefault("SEND_FILE_MAX_AGE_DEFAULT", 86400)  # vendored doc assets
    _openapi_config(app)

    requestlog.setup_logging(app.config["LOG_LEVEL"])
    model.init_app(app)
    app_metrics = metrics.init_app(app, model.get_state(app))
    requestlog.init_app(app, app_metrics)
    auth.init_app(app)  # after the request log: refused requests are logged and counted too
    # always_send=False: CORS headers only for requests with an Origin header (browsers);
    # a device or a script sends none, and the CORS spec leaves such requests out of scope
    app.after_request(_vary_on_origin)  # before CORS: Flask runs after-request hooks last first
    CORS(app, origins=app.config["CORS_ORIGINS"], expose_headers=["X-Request-ID"], always_send=False)

    api = Api(app)
    app.extensions["ecg_api"] = api  # where endpoints are registered (service/api.py)
    api.spec.components.security_scheme("ApiKey", auth.SECURITY_SCHEME)
    from . import demo, health, predictions

    api.register_blueprint(health.blp)
    api.register_blueprint(predictions.blp)
    predictions.add_no_slash_rule(app)
    from . import recordings  # whole EDF recordings and their Holter report (docs/HOLTER.md)

    api.register_blueprint(recordings.blp)
    recordings.add_no_slash_rule(app)
    recordings.init_app(app)
    app.register_blueprint(demo.bp)  # a plain Flask blueprint: the page is not in the OpenAPI document
    return app

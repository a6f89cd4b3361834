"""flask-smorest, set up once for every endpoint of the API: its JSON parser and error body.

An endpoint is built as ``health.py`` and ``predictions.py`` build theirs::

    from .api import Blueprint

    blp = Blueprint("recordings", __name__, url_prefix="/api/v1/recordings")

    @blp.route("/", methods=["POST"])
    @blp.arguments(schemas.SomeRequestSchema())
    @blp.response(201, schemas.SomeResponseSchema)
    def create_recording(body): ...

and registered on the :class:`Api` in ``create_app``. Its request bodies are then read by
:class:`errors.OrjsonParser`: NaN, Infinity, an empty body or malformed JSON answer 400,
a non-JSON Content-Type 415, with this service's error body. The :class:`Api` refuses a
blueprint that parses with anything else, such as a plain ``flask_smorest.Blueprint``
(whose parser accepts NaN).
"""

import flask_smorest

from . import errors, schemas


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading request bodies with the service's JSON parser."""

    # a class attribute, as flask-smorest documents: @blp.arguments binds it when the
    # view's module is imported, so it cannot be set later, on the app
    ARGUMENTS_PARSER = errors.OrjsonParser()


class Api(flask_smorest.Api):
    """flask-smorest with this service's error body (``detail``, ``errors``)."""

    ERROR_SCHEMA = schemas.ErrorSchema

    def handle_http_exception(self, error):
        return errors.http_error(error)

    def register_blueprint(self, blp, **options):
        if not isinstance(blp.ARGUMENTS_PARSER, errors.OrjsonParser):  # it would accept NaN
            raise TypeError(f"blueprint {blp.name!r} does not read JSON with errors.OrjsonParser: "
                            "build it from service.api.Blueprint")
        super().register_blueprint(blp, **options)

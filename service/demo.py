"""The page people look at: an ECG strip with every beat marked N or V.

Served at /demo, and at / to browsers (``Accept: text/html``); API clients asking / for
JSON, or for anything (*/*, no Accept), still get the contract's JSON from health.root.
The page is static HTML/CSS/JS under static/demo/ that calls POST /api/v1/predictions/
like any client; its assets are served at /demo/<file>.
"""

from flask import Blueprint, request, send_from_directory

PAGE = "index.html"


class PageBlueprint(Blueprint):
    def get_send_file_max_age(self, filename):
        # no max-age: browsers revalidate (ETag) so a new deploy's page and script show at
        # once, never a day-old app.js against a newer page; the files are small
        return None


bp = PageBlueprint("demo", __name__, static_folder="static/demo", static_url_path="/demo")


def wants_page():
    """True when the client prefers HTML to JSON; */* and a missing Accept mean JSON."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def page_response():
    """The page as the answer to GET / (whose JSON answer differs by Accept)."""
    response = page()
    response.vary.add("Accept")
    return response


@bp.route("/demo", methods=["GET"])
@bp.route("/demo/", methods=["GET"])
def page():
    return send_from_directory(bp.static_folder, PAGE, max_age=None)

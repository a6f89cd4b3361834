"""The demo page's routes and files, through Flask's test client: / negotiates (JSON stays
the default for API clients), /demo serves the page, nothing comes from a CDN, and the
bundled strips are what they say they are."""

import json
import re

import pytest

from service import demo
from tests.service_helpers import PREDICT, ROOT, app, client  # noqa: F401

DEMO_DIR = ROOT / "service" / "static" / "demo"
STRIPS_DIR = DEMO_DIR / "strips"
STRIP_INDEX = json.loads((STRIPS_DIR / "index.json").read_text())
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
# de Chazal's test half of MIT-BIH: the model never trained on these records
DS2 = set("100 103 105 111 113 117 121 123 200 202 210 212 213 214 219 221 222 228 231 232 233 234".split())


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html, application/json",
                                    "application/json;q=0.9, */*;q=0.1"])
def test_root_stays_json_for_api_clients(client, accept):
    r = client.get("/", headers={"Accept": accept} if accept else {})
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json()["docs"] == "/docs" and r.get_json()["health"] == "/health"
    assert "Accept" in r.vary


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "text/html"])
def test_root_is_the_page_for_browsers(client, accept):
    r = client.get("/", headers={"Accept": accept})
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert b'<canvas id="trace"' in r.data
    assert "Accept" in r.vary


@pytest.mark.parametrize("path", ["/demo", "/demo/"])
def test_demo_serves_the_page_whatever_the_accept(client, path):
    r = client.get(path, headers={"Accept": "*/*"})
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert client.get("/demo").data == client.get("/", headers={"Accept": "text/html"}).data


def test_page_assets_are_served_and_revalidated(client):
    page = client.get("/demo").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="(/demo/[^"]+)"', page)
    assert {"/demo/app.js", "/demo/demo.css", "/demo/favicon.svg"} <= set(assets)
    for path in assets + ["/demo/trace.js", "/demo/parse.js", "/demo/strips/index.json"]:
        r = client.get(path)
        assert r.status_code == 200, path
        # no max-age: a deploy's new script is never mixed with a cached old one
        assert "max-age" not in (r.headers.get("Cache-Control") or ""), path
    assert client.get("/demo/app.js").mimetype in ("text/javascript", "application/javascript")


def test_the_page_loads_nothing_from_elsewhere():
    for path in DEMO_DIR.glob("*.*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text()
            # links in the page's own text may point out; nothing may be loaded from out there
            loads = re.findall(r'(?:src=|@import|url\(|import .* from |fetch\()\s*["\']?(https?:)?//', text)
            assert not loads, path


def test_wants_page_prefers_json_on_a_tie(app):
    for accept, want in [(BROWSER_ACCEPT, True), ("*/*", False), ("", False), ("text/*", True)]:
        with app.test_request_context("/", headers={"Accept": accept}):
            assert demo.wants_page() is want, accept


def test_the_page_is_not_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert not any(p.startswith("/demo") for p in paths)


@pytest.mark.parametrize("entry", STRIP_INDEX["strips"], ids=lambda e: e["id"])
def test_bundled_strips_are_short_ds2_excerpts_with_v_beats(entry):
    strip = json.loads((STRIPS_DIR / entry["file"]).read_text())
    assert strip["record"] in DS2 and strip["lead"] == "MLII" and strip["units"] == "mV"
    assert 10 <= strip["duration_s"] <= 60
    assert len(strip["signal_data"]) == strip["duration_s"] * strip["sampling_rate"]
    assert all(type(v) in (int, float) for v in strip["signal_data"])
    assert 0.5 < max(strip["signal_data"]) - min(strip["signal_data"]) < 10  # millivolts
    assert strip["reference_beats"]["V"] > 0
    assert strip["source"]["license"] == "ODC-By 1.0"
    assert {k: strip[k] for k in ("id", "title", "reference_beats")} == {
        k: entry[k] for k in ("id", "title", "reference_beats")}


@pytest.mark.parametrize("entry", STRIP_INDEX["strips"], ids=lambda e: e["id"])
def test_each_strip_is_a_valid_request_with_v_beats_found(client, entry):
    strip = json.loads((STRIPS_DIR / entry["file"]).read_text())
    r = client.post(PREDICT, json={"signal_data": strip["signal_data"],
                                   "sampling_rate": strip["sampling_rate"]})
    assert r.status_code == 201
    assert r.get_json()["ventricular_beats"] > 0


def test_attribution_is_on_the_page(client):
    page = client.get("/demo").get_data(as_text=True)
    for credit in ("MIT-BIH Arrhythmia Database", "Moody", "Goldberger", "ODC-By 1.0"):
        assert credit in page

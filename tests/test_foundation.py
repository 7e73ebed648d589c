"""The app assembles, serves its pages and assets, and never reaches for outside hosts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import plotly
import pytest
from fastapi.testclient import TestClient

from gradient_flow_lab.app.resources import static_dir, templates_dir

PAGE_LINKS = ("/explore", "/activations", "/bptt", "/cells", "/compare", "/chaos", "/train",
              "/lesson", "/models")

# Any way a page could pull from another host: src=/href=/action= attributes, CSS url(),
# and ES module imports, with http:, https: or protocol-relative (//host) URLs.
EXTERNAL_REFERENCE = re.compile(
    r"""(?:
        \b(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//
      | \burl\(\s*["']?\s*(?:https?:)?//
      | \b(?:import|from)\s*\(?\s*["'](?:https?:)?//
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def test_healthz_reports_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_index_is_html_with_a_card_link_per_page(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<h1>" in html
    cards = re.findall(r'<article class="card">.*?</article>', html, re.DOTALL)
    assert len(cards) == len(PAGE_LINKS), f"expected one card per page, found {len(cards)}"
    for path in PAGE_LINKS:
        assert any(f'href="{path}"' in card for card in cards), f"no card links to {path}"
    assert '<link rel="stylesheet" href="/static/css/site.css">' in html


def test_stylesheet_and_modules_are_served(client: TestClient) -> None:
    css = client.get("/static/css/site.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "body.present" in css.text

    js = client.get("/static/js/present.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]


def test_plotly_is_served_from_the_installed_package(client: TestClient) -> None:
    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    body = response.content
    # the whole bundle plotly.py ships, byte for byte: a truncated or other copy breaks the pages
    installed = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert body.startswith(b"/**\n* plotly.js v"), body[:60]
    assert len(body) == installed.stat().st_size and body == installed.read_bytes()


def _asset_files() -> list[Path]:
    suffixes = {".html", ".css", ".js", ".mjs", ".svg"}
    files = [
        path
        for root in (templates_dir(), static_dir())
        for path in root.rglob("*")
        if path.is_file() and path.suffix in suffixes
    ]
    assert files, "found no template or static files to scan"
    return files


@pytest.mark.parametrize("path", _asset_files(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_assets_reference_no_external_hosts(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [match.group(0) for match in EXTERNAL_REFERENCE.finditer(text)]
    assert not found, f"{path} loads from another host: {found}"


def test_rendered_index_references_no_external_hosts(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert not EXTERNAL_REFERENCE.findall(response.text)


def test_cli_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gradient_flow_lab.app.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--workers"):
        assert option in result.stdout


def test_a_missing_page_is_an_html_page_for_a_browser_and_json_for_a_program(client):
    for path in ("/lesson/99", "/no-such-page"):
        page = client.get(path, headers={"accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Nothing here" in page.text and 'href="/explore"' in page.text  # the site's menu
        assert "x-content-type-options" in page.headers
    assert "steps 1 to" in client.get("/lesson/99", headers={"accept": "text/html"}).text
    for path, accept in (("/no-such-page", "*/*"), ("/api/no-such-thing", "text/html")):
        answer = client.get(path, headers={"accept": accept})
        assert answer.status_code == 404 and answer.json()["detail"]

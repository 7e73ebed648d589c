""""Download this view" on the other simulation pages: one HTML file that draws every plot
offline, with the settings it was made from."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("path,figures,setting", [
    ("/bptt?truncation=5", 4, '"truncation": 5'),
    ("/cells?cell=gru", 4, '"cell": "gru"'),
    ("/compare?seq_len=30", 2, '"seq_len": 30'),
])
def test_a_saved_view_opens_offline_with_every_plot(page, path, figures, setting):
    page.goto(page.base_url + path)
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Done')", timeout=30_000)
    with page.expect_download() as saved:
        page.click("#download-view")
    html = Path(saved.value.path()).read_text(encoding="utf-8")
    assert setting in html and "src=\"http" not in html
    offline = page.context.new_page()
    requests = []
    offline.on("request", lambda r: requests.append(r.url) if r.url.startswith("http") else None)
    offline.set_content(html)
    offline.wait_for_function(
        f"() => document.querySelectorAll('.js-plotly-plot').length === {figures}",
        timeout=20_000)
    assert requests == []
    offline.close()

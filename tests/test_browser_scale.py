"""The page's side of a class at once: each page load sends one page id with all its streams
(so a newer stream stops the older one's run), and a lean result (arrays sent once) is drawn
exactly as a full one."""

from __future__ import annotations

import pytest

from tests.browser import wait_rendered


@pytest.mark.browser
def test_streams_carry_one_page_id_per_page_load_and_lean_results_draw_in_full(page):
    seen = []
    page.on("request", lambda request: seen.append(request.headers.get("x-gfl-page"))
            if "/api/simulate/stream" in request.url else None)
    page.goto(page.base_url + "/explore?seq_len=60&num_layers=2")
    first = wait_rendered(page)
    page.locator("#ctl-seq_len").fill("61")
    page.locator("#ctl-seq_len").dispatch_event("input")
    wait_rendered(page, after=first)
    assert len(seen) >= 2 and seen[0] and len(set(seen)) == 1, seen
    # the heatmap's rows came as references to the line plot's values: drawn in full
    drawn = page.evaluate("""() => ({
      rows: document.getElementById('fig-layer_heatmap').data[0].z,
      lines: document.getElementById('fig-grad_norms').data.slice(0, 2).map((t) => t.y),
      custom: document.getElementById('fig-grad_norms').data[0].customdata,
    })""")
    assert len(drawn["rows"]) == 2 and len(drawn["rows"][0]) == 61
    assert drawn["rows"] == drawn["lines"]
    assert len(drawn["custom"]) == 61 and isinstance(drawn["custom"][0][0], str)
    page.reload()
    wait_rendered(page)
    assert seen[-1] != seen[0], "a new page load is a new page"

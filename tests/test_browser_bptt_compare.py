"""The BPTT and compare pages in a real browser, used as a person would."""

from __future__ import annotations

import pytest

from tests.browser import STREAM_TAP, screenshot, wait_rendered

pytestmark = pytest.mark.browser

TIMEOUT = 30_000


def plotted(page, name: str) -> bool:
    return page.evaluate(
        f"() => {{ const d = document.getElementById('fig-{name}');"
        " return !!(d && d.data && d.data.length && d.querySelector('.main-svg')); }")


def truncated_line(page) -> list:
    return page.evaluate(
        "() => Array.from(document.getElementById('fig-grad_norms')._fullData[1].y)")


def test_bptt_page_draws_and_animates(page):
    page.goto(page.base_url + "/bptt")
    wait_rendered(page)
    for name in ("unrolled", "reach", "contributions", "grad_norms"):
        assert plotted(page, name), f"fig-{name} was not drawn"
    assert "k = 10" in page.locator("#summary").inner_text()
    assert page.locator("#checks li[data-check='truncation_reach'].pass").count() == 1
    assert page.locator(".figure-downloads[data-figure='reach'] button").count() == 2
    # The replay lights the columns up progressively: nodes start dimmed.
    page.click("#replay")
    page.wait_for_function(
        "() => { const d = document.getElementById('fig-unrolled');"
        " const t = d.data.find((x) => x.uid === 'nodes');"
        " const o = t.marker.opacity; return Array.isArray(o) && o.some((v) => v < 1); }",
        timeout=TIMEOUT)
    page.wait_for_function(
        "() => { const d = document.getElementById('fig-unrolled');"
        " const t = d.data.find((x) => x.uid === 'nodes');"
        " return !Array.isArray(t.marker.opacity); }", timeout=TIMEOUT)
    screenshot(page, "bptt")


def test_truncation_control_changes_the_data_and_the_url(page):
    page.goto(page.base_url + "/bptt?seq_len=40")
    wait_rendered(page)
    before = truncated_line(page)
    page.fill("#ctl-truncation", "5")
    page.wait_for_function("() => location.search.includes('truncation=5')", timeout=TIMEOUT)
    page.wait_for_function(
        "() => document.getElementById('summary').innerText.includes('k = 5')",
        timeout=TIMEOUT)
    wait_rendered(page)
    assert truncated_line(page) != before
    assert "seq_len=40" in page.url


def test_truncation_is_restored_from_the_url(page):
    page.goto(page.base_url + "/bptt?truncation=5")
    assert page.input_value("#ctl-truncation") == "5"
    wait_rendered(page)
    assert "k = 5" in page.locator("#summary").inner_text()


def test_bad_value_shows_the_422_message(page):
    page.goto(page.base_url + "/bptt?truncation=5000")
    page.wait_for_selector("#error-box:not([hidden])", timeout=TIMEOUT)
    assert "truncation" in page.locator("#error-box").inner_text()
    # The browser logs the expected 422 itself; that is the point of this test, not an error.
    page.watch.errors[:] = [e for e in page.watch.errors if "422" not in e]


def test_compare_page_draws_three_cells(page):
    page.goto(page.base_url + "/compare")
    wait_rendered(page)
    for name in ("grad_norms", "retention"):
        assert plotted(page, name), f"fig-{name} was not drawn"
    assert page.locator("#cell-table tbody tr").count() == 3
    names = page.evaluate(
        "() => document.getElementById('fig-grad_norms').data.map((t) => t.name)")
    assert {"rnn", "lstm", "gru"} <= set(names)
    assert page.locator("#checks li[data-check='lstm_keeps_more']").count() == 1
    screenshot(page, "compare")


def test_a_long_comparison_says_which_cell_it_is_running(page):
    # Each stage the stream names is shown in the status line while the run computes.
    page.add_init_script(STREAM_TAP + """
      window.__shown = [];
      window.__sent = [];
      new MutationObserver(() => {
        const text = document.getElementById('status')?.textContent ?? '';
        if (text.startsWith('computing: ')) window.__shown.push(text);
      }).observe(document, { subtree: true, childList: true, characterData: true });
      window.__onStreamEvent = (name, data) => {
        if (name === 'progress') window.__sent.push(JSON.parse(data).stage);
      };
    """)
    # The largest comparison the work budget allows: over a second of NumPy here.
    # (a seed no other test uses: a result cached by the server would arrive with no stages)
    page.goto(page.base_url + "/compare?seq_len=1000&hidden_size=176&seed=90210")
    wait_rendered(page)
    sent = [stage for stage in page.evaluate("() => window.__sent") if stage != "starting"]
    shown = page.evaluate("() => window.__shown")
    assert sent, "a run of over a second names its stages"
    assert set(sent) <= {"rnn: forward and backward pass", "lstm: forward and backward pass",
                         "gru: forward and backward pass", "figures", "writing the result",
                         "waiting for another large network to finish"}, sent
    # Shown in the order sent; two stages that arrive in one network chunk are drawn in one
    # task, so only the later can be seen, hence a subsequence (and at least one of them).
    expected = iter(f"computing: {stage}…" for stage in sent)
    assert shown and all(text in expected for text in shown), (sent, shown)
    assert page.locator("#status").inner_text().startswith("Done")

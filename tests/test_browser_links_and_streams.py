"""Links and streams as a person meets them: an old, partial link opens and is rewritten in
full; a refused request shows the server's message after one request; the BPTT page draws the
columns the server names; an `error` event in the stream is shown."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from gradient_flow_lab.app.schemas import SimulationConfig, TrainingConfig

pytestmark = pytest.mark.browser

TIMEOUT = 30_000


def query_of(url: str) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlsplit(url).query).items()}


def wait_rendered(page) -> None:
    page.wait_for_function(
        "() => { const s = document.getElementById('status');"
        " return s.dataset.rendered && s.dataset.rendered === s.dataset.run; }",
        timeout=TIMEOUT)


# Every field with a value; `model` (an uploaded model's id) is unset unless a link names one.
SET_FIELDS = {name: field for name, field in SimulationConfig.model_fields.items()
              if field.default is not None}


def test_a_partial_old_link_opens_and_the_page_writes_the_full_link(page):
    page.goto(page.base_url + "/explore?seq_len=80&present=0")
    wait_rendered(page)
    query = query_of(page.url)
    # Every field of the state is in the link now, the asked-for one as asked, the rest at
    # the schema's defaults; unrelated parameters stay.
    assert set(SET_FIELDS) | {"hidden_layer"} <= set(query), query
    assert "model" not in query  # an optional field left unset is not written as "null"
    assert query["seq_len"] == "80" and query["present"] == "0"
    for name, field in SET_FIELDS.items():
        if name != "seq_len":
            assert type(field.default)(query[name]) == field.default, name
    assert page.locator("#ctl-seq_len").input_value() == "80"


def test_train_link_is_written_in_full_before_any_run(page):
    page.goto(page.base_url + "/train?lag=12")
    query = query_of(page.url)
    assert set(TrainingConfig.model_fields) <= set(query), query
    assert query["lag"] == "12" and query["cells"] == TrainingConfig().cells


def test_train_shows_a_422_message_after_one_request(page):
    sent = []
    page.on("request", lambda request: "/api/train/stream" in request.url
            and sent.append(request.url))
    page.goto(page.base_url + "/train?lag=1&steps=3&hidden_size=8")  # lag below its minimum
    page.get_by_role("button", name="Start training").click()
    page.wait_for_selector("#error-box:not([hidden])", timeout=TIMEOUT)
    message = page.locator("#error-box").inner_text()
    lag = TrainingConfig.model_fields["lag"].metadata  # [Ge(2), Le(200)]
    allowed = f"between {lag[0].ge} and {lag[1].le}"
    assert "lag" in message and allowed in message and "422" in message, message
    page.wait_for_timeout(1000)  # time for any second request to show up
    assert len(sent) == 1, sent
    assert page.get_by_role("button", name="Start training").is_enabled()
    # The browser logs the refused request itself; that is the point of this test.
    page.watch.errors[:] = [e for e in page.watch.errors if "422" not in e]


def test_bptt_draws_the_columns_the_server_names(page):
    # The server's meta event is altered to name other columns than it would pick itself: the
    # placeholder the page draws during the sweep must show exactly those.
    columns = list(range(0, 300, 7))

    def alter(route):
        response = route.fetch()
        lines = response.text().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("data: ") and lines[i - 1] == "event: meta":
                meta = json.loads(line.removeprefix("data: "))
                assert meta["unrolled_steps"] != columns
                lines[i] = "data: " + json.dumps({**meta, "unrolled_steps": columns})
                break
        route.fulfill(response=response, body="\n".join(lines))

    page.route("**/api/simulate/stream?*", alter)
    page.add_init_script("""
      window.__placeholders = [];
      document.addEventListener('DOMContentLoaded', () => {
        const react = window.Plotly.react;
        window.Plotly.react = function (element, data, layout) {
          if (element.id === 'fig-unrolled' && layout?.title?.text?.includes('arriving')) {
            window.__placeholders.push([...new Set(data[0].x)]);
          }
          return react.apply(this, arguments);
        };
      });
    """)
    page.goto(page.base_url + "/bptt?seq_len=300")
    wait_rendered(page)
    placeholders = page.evaluate("() => window.__placeholders")
    assert placeholders == [columns], placeholders


def test_an_error_event_in_the_stream_is_shown(page):
    # A comment, CRLF line ends, and the error's JSON split over two data lines.
    body = ("event: meta\r\ndata: {\"seq_len\": 5, \"num_layers\": 1}\r\n\r\n"
            ": a comment line\n"
            "event: error\ndata: {\"message\":\ndata: \"the run was stopped\"}\n\n")
    page.route("**/api/simulate/stream?*", lambda route: route.fulfill(
        status=200, headers={"content-type": "text/event-stream"}, body=body))
    page.goto(page.base_url + "/compare")
    page.wait_for_selector("#error-box:not([hidden])", timeout=TIMEOUT)
    assert "the run was stopped" in page.locator("#error-box").inner_text()
    assert page.locator("#status").get_attribute("data-state") == "error"

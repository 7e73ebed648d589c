"""The scale-out recipe in app/deploy/: nginx (Debian's package) in front of two app processes,
on loopback. A second identical GET is a cache hit at nginx, a stream arrives as it is made,
stopping one app process breaks nothing, and a real model (an nn.LSTM(64, 256, 2), 3.4 MB)
uploads through it while other bodies stay small. The compose file is checked for the same
layout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from gradient_flow_lab.app.security import MAX_BODY_BYTES, upload_body_bytes
from tests.helpers import UVICORN_COMMAND, free_port, running_server, wait_until

DEPLOY = Path(__file__).resolve().parents[1] / "app" / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_conf(port: int, upstreams: list[str], folder: Path) -> str:
    """The shipped configuration with loopback ports and paths under ``folder``; nothing else
    changes."""
    text = (DEPLOY / "nginx.conf").read_text()
    servers = re.findall(r"^\s*server app-\d+:8000[^;]*;\n", text, flags=re.M)
    assert len(servers) == 2, "the shipped upstream should list app-1 and app-2"
    text = text.replace(servers[0], "".join(
        servers[0].replace("app-1:8000", upstream) for upstream in upstreams), 1)
    text = text.replace(servers[1], "", 1)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("/var/cache/nginx/gfl", str(folder / "cache"))
    text = text.replace("pid /run/nginx-gfl.pid;", f"pid {folder / 'nginx.pid'};")
    # temporary files of the proxy under the folder too (nginx's defaults are under its prefix)
    return text.replace("http {", f"http {{\n    proxy_temp_path {folder / 'proxy_temp'};\n"
                        f"    client_body_temp_path {folder / 'body_temp'};", 1)


@pytest.fixture
def recipe():
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (bash .ci/run installs it)")
    folder = Path(tempfile.mkdtemp(prefix="gfl-nginx-"))
    folder.chmod(0o755)  # nginx's workers (user nobody) write the cache here
    # one model store for both processes (replicas may share the folder), not the default one
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "GFL_MODEL_DIR": str(folder / "models")}
    with running_server(UVICORN_COMMAND, env=env) as one, \
            running_server(UVICORN_COMMAND, env=env) as two:
        port = free_port()
        upstreams = [one.url.removeprefix("http://"), two.url.removeprefix("http://")]
        (folder / "nginx.conf").write_text(nginx_conf(port, upstreams, folder))
        log = (folder / "nginx.log").open("w")
        nginx = subprocess.Popen(
            [NGINX, "-p", str(folder), "-e", "stderr", "-c", str(folder / "nginx.conf"),
             "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: nginx.poll() is not None or _answers(url), 10,
                       "nginx did not answer")
            assert nginx.poll() is None, (folder / "nginx.log").read_text()
            yield url, one, two
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
            log.close()
            shutil.rmtree(folder, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_nginx_caches_results_streams_progressively_and_survives_a_stopped_process(recipe):
    url, one, two = recipe
    params = {"view": "explore", "seq_len": 64, "seed": 3}
    with httpx.Client(base_url=url, timeout=30) as http:
        first = http.get("/api/simulate", params=params)
        second = http.get("/api/simulate", params=params)
        assert first.status_code == second.status_code == 200
        assert first.headers["x-cache-status"] == "MISS"
        assert second.headers["x-cache-status"] == "HIT"
        assert second.text == first.text and second.headers["etag"] == first.headers["etag"]

        # A stream passes through unbuffered: a long run's first events arrive well before its
        # last (with buffering, they would all arrive together at the end).
        arrivals = []
        stream_params = {"view": "explore", "seq_len": 1000, "hidden_size": 192,
                         "batch_size": 4, "seed": 5}
        with http.stream("GET", "/api/simulate/stream", params=stream_params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event:"):
                    arrivals.append((line.split(":", 1)[1].strip(), time.monotonic()))
        names = [name for name, _ in arrivals]
        assert names[0] == "meta" and names[-1] == "result"
        spread = arrivals[-1][1] - arrivals[0][1]
        assert spread > 0.2, f"all events arrived within {spread:.3f} s: buffered?"

        # One app process stops: every request still succeeds (nginx moves to the other).
        one.process.terminate()
        one.process.wait(timeout=20)
        for seed in range(6):
            answer = http.get("/api/simulate", params={"seq_len": 20, "seed": seed})
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-cache-status"] == "MISS"
        assert http.get("/healthz").status_code == 200
        events = http.get("/api/simulate/stream", params={"seq_len": 20, "seed": 99})
        assert events.status_code == 200 and "event: result" in events.text


def _bytes(size: str) -> int:
    """nginx's size syntax: 1m, 65600k, 512."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(size[:-1]) * units[size[-1].lower()] if size[-1].isalpha() else int(size)


def test_the_recipe_lets_uploads_through_up_to_the_apps_limit_and_nothing_else():
    conf = (DEPLOY / "nginx.conf").read_text()
    server_limit = re.search(r"^        client_max_body_size (\S+);", conf, flags=re.M)
    upload = re.search(r"location = /api/models \{[^}]*client_max_body_size (\S+);", conf)
    assert server_limit and upload, "nginx.conf should set a server limit and an upload limit"
    # the app's own limits with the default GFL_MODEL_MAX_BYTES (32 MiB): two files + framing
    assert _bytes(upload.group(1)) == upload_body_bytes() == 2 * 32 * 2**20 + 64 * 2**10
    assert MAX_BODY_BYTES <= _bytes(server_limit.group(1)) <= 2**20


@pytest.mark.slow
def test_a_real_model_uploads_through_nginx_and_other_bodies_stay_small(recipe):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save

    url, _, _ = recipe
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(64, 256, 2)
    data = save({key: value.contiguous() for key, value in lstm.state_dict().items()})
    assert len(data) > 3_000_000  # 3.4 MB: three times the 1 MiB that nginx allowed before
    with httpx.Client(base_url=url, timeout=60) as http:
        uploaded = http.post("/api/models", files={"file": ("lstm.safetensors", data)})
        assert uploaded.status_code == 201, uploaded.text[:300]
        described = uploaded.json()
        assert (described["cell"], described["num_layers"], described["input_size"],
                described["hidden_size"]) == ("lstm", 2, 64, 256)
        for _ in range(2):  # either app process answers for it (they share the store)
            again = http.get(f"/api/models/{described['id']}")
            assert again.status_code == 200 and again.json()["id"] == described["id"]
        # anywhere else, a body past the small limit stops at nginx
        refused = http.post("/api/simulate", content=b"{" + b" " * (2 * 2**20) + b"}",
                            headers={"content-type": "application/json"})
        assert refused.status_code == 413


def test_the_compose_file_runs_the_same_layout():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = set(re.findall(r"^\s*server (app-\d+):8000", conf, flags=re.M))
    apps = {name for name in services if name.startswith("app-")}
    assert apps == upstream and len(apps) >= 2, "nginx.conf and compose.yaml list other apps"
    for name in apps:
        service = services[name]
        assert service["command"][-2:] == ["--port", "8000"] and "0.0.0.0" in service["command"]
        assert (DEPLOY / service["build"]["context"] / "Dockerfile").exists()
    nginx = services["nginx"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert any(port.endswith(":8080") for port in nginx["ports"]) and "listen 8080;" in conf
    assert set(nginx["depends_on"]) == apps
    assert set(compose["volumes"]) == {v.split(":")[0] for v in nginx["volumes"]
                                        if not v.startswith(".")}

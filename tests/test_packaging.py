"""The Dockerfile's recipe, followed here where no Docker engine runs: copy the same files,
``pip install .`` into a fresh virtual environment outside the source tree, start the console
command from another folder, and load every page. This is the classic failure it guards
against: an app that runs from the checkout but misses its templates once installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import running_server, wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def dockerfile_copies() -> list[str]:
    """The paths the Dockerfile copies into the image, read from the Dockerfile itself."""
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        match = re.match(r"COPY\s+(.+)\s+\S+$", line.strip())
        if match and "--from" not in line:
            sources += match.group(1).split()
    return sources


def get(url: str) -> tuple[int, bytes, dict]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read(), dict(response.headers)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    copies = dockerfile_copies()
    assert {"pyproject.toml", "engine", "app", "templates", "static"} <= set(copies)
    for name in copies:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, context / name)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
           "--quiet", "."]
    subprocess.run(pip, cwd=context, check=True, timeout=900)
    shutil.rmtree(context)  # the installed app must not need its sources
    return venv


@pytest.fixture(scope="module")
def server(installed, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with running_server([str(installed / "bin" / "gradient-flow-lab")], cwd=elsewhere,
                        log=elsewhere / "server.log") as server:
        # the banner names the URL once the port is bound (after uvicorn's own lines)
        banner = f"Gradient Flow Lab running at {server.url}/"
        wait_until(lambda: banner in server.log_text(), 10,
                   f"the command should print its URL; it printed {server.log_text()[:500]!r}")
        yield server.url


def test_the_installed_package_imports_from_the_venv_not_the_checkout(installed):
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "import gradient_flow_lab.app, gradient_flow_lab.templates; "
         "from gradient_flow_lab import engine; "
         "print(gradient_flow_lab.app.__file__, gradient_flow_lab.templates.__file__, "
         "engine.__file__)"],
        cwd=installed, capture_output=True, text=True, check=True).stdout
    assert str(installed) in where and str(ROOT) not in where


def test_the_install_claims_one_top_level_name(installed):
    """Nothing generic (app, engine, templates, static) lands in site-packages, where it would
    overwrite or shadow another project's package of the same name."""
    site = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    ours = {path.name for path in Path(site).iterdir()
            if path.is_dir() and not path.name.endswith((".dist-info", "__pycache__"))
            and path.name not in ("pip", "_distutils_hack", "setuptools", "pkg_resources")}
    assert "gradient_flow_lab" in ours
    assert not ours & {"app", "engine", "templates", "static"}, ours
    for name in ("app", "engine"):
        failed = subprocess.run([str(installed / "bin" / "python"), "-c", f"import {name}"],
                                cwd=installed, capture_output=True, text=True)
        assert failed.returncode != 0 and "No module named" in failed.stderr


def test_the_installed_package_carries_its_license_and_one_version(installed):
    script = ("from importlib.metadata import distribution; d = distribution('gradient-flow-lab');"
              "print(d.metadata['License-Expression']);"
              "print(any(f.name == 'LICENSE' for f in d.files)); print(d.version)")
    lines = subprocess.run([str(installed / "bin" / "python"), "-c", script], cwd=installed,
                           capture_output=True, text=True, check=True).stdout.split()
    assert lines[:2] == ["MIT", "True"]
    version = subprocess.run([str(installed / "bin" / "gradient-flow-lab"), "--version"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert version == ["gradient-flow-lab", lines[2]]


@pytest.mark.parametrize("path", ["/", "/explore", "/activations", "/bptt", "/cells",
                                  "/compare", "/train", "/docs"])
def test_every_page_loads_from_the_installed_package(server, path):
    status, body, headers = get(server + path)
    assert status == 200 and b"Gradient Flow Lab" in body  # /docs too: its title
    for asset in re.findall(rb'(?:src|href)="(/[^"]+)"', body):
        asset_status, asset_body, _ = get(server + asset.decode())
        assert asset_status == 200 and asset_body, asset


def test_the_installed_app_computes_and_serves_plotly(server):
    status, body, headers = get(server + "/vendor/plotly.min.js")
    assert status == 200 and len(body) > 1_000_000
    request = urllib.request.Request(server + "/api/simulate", data=b'{"seq_len": 20}',
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and b'"grad_norms"' in response.read()


def test_the_installed_cli_writes_an_offline_report_and_refuses_a_bad_file(installed,
                                                                          tmp_path):
    """`gradient-flow-lab report` from the fresh install, no server: one self-contained file."""
    rng = np.random.default_rng(0)
    H, D = 6, 3
    model = tmp_path / "gru.npz"
    np.savez(model, weight_ih_l0=rng.normal(size=(3 * H, D)),
             weight_hh_l0=rng.normal(size=(3 * H, H)) / H, bias_ih_l0=np.zeros(3 * H),
             bias_hh_l0=np.zeros(3 * H))
    command = str(installed / "bin" / "gradient-flow-lab")
    done = subprocess.run([command, "report", str(model), "-o", "report.html"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "report.html").read_text()
    assert "Health report" in html and "Plotly.newPlot" in html
    assert 'src="http' not in html and 'src="/' not in html  # nothing fetched: plotly.js inline
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    refused = subprocess.run([command, "report", str(bad)], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1 and "neither" in refused.stderr

"""What .ci/run relies on: a skipped gold comparison fails the run when GFL_REQUIRE_GOLD=1, and
`pytest --all` is an option pytest knows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(*args: str, hide_torch: Path | None = None, **env: str):
    environ = {**os.environ, **env}
    if "GFL_REQUIRE_GOLD" not in env:
        environ.pop("GFL_REQUIRE_GOLD", None)
    if hide_torch is not None:  # a `torch` that cannot be imported, found before the real one
        (hide_torch / "torch").mkdir(exist_ok=True)
        (hide_torch / "torch" / "__init__.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
        environ["PYTHONPATH"] = os.pathsep.join([str(hide_torch), str(ROOT)])
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)


def test_gold_tests_skipped_fail_the_run_only_when_required(tmp_path):
    quiet = run_pytest("tests/test_engine_torch.py", hide_torch=tmp_path)
    # only skips: pytest's own "no tests ran" (5), which .ci/run never lets pass either
    assert quiet.returncode == 5, quiet.stdout[-2000:]
    assert "1 skipped" in quiet.stdout
    required = run_pytest("tests/test_engine_torch.py", hide_torch=tmp_path, GFL_REQUIRE_GOLD="1")
    assert required.returncode == 1, required.stdout[-2000:]
    assert "gold tests skipped with GFL_REQUIRE_GOLD=1" in required.stdout
    assert "tests/test_engine_torch.py" in required.stdout


def test_pytest_knows_the_all_option():
    result = run_pytest("--all", "--collect-only", "tests/test_settings.py")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

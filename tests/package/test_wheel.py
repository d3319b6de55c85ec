"""The distribution builds into a wheel and an sdist PyPI would take: its own free name, the
command and the pytest plugin as entry points, the package data, a README that renders
(twine check)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_wheel_builds_and_passes_twine_check(tmp_path: Path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith("tracer_agents-")  # "tracer" is another project on PyPI
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(meta).decode()
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "Name: tracer-agents" in metadata
    assert "Description-Content-Type: text/markdown" in metadata
    assert "tracer = tracer.cli:run" in entry and "tracer = tracer.replay.pytest_plugin" in entry
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tracer").rglob("*.py")}
    assert "tracer/py.typed" in names and package <= set(names), package - set(names)
    assert not any(n.startswith(("tests/", "bench/", "traces/")) for n in names)
    sdist = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sdist.returncode == 0, sdist.stderr[-2000:]
    (archive,) = tmp_path.glob("tracer_agents-*.tar.gz")
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(archive)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path: Path):
    """What a user gets from `pip install tracer-agents`: the wheel, its dependencies from
    the index, into an empty venv (no system packages), and `tracer demo` from it."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    demo = subprocess.run(
        [str(venv / "bin" / "tracer"), "demo", "-o", str(tmp_path / "demo.trace"), "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert '"ok": true' in demo.stdout
    where = subprocess.run(
        [str(py), "-c", "import tracer; print(tracer.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert str(venv) in where.stdout  # the installed package, not this checkout

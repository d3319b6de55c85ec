"""The README's commands, run as written: the set-up a newcomer types first, and the
recipe that points an agent (the real ``openai`` SDK here) at tracer's servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.hardening.helpers import free_port

README = (ROOT / "README.md").read_text()
CLIENT = ROOT / "tests" / "clients" / "openai_client.py"


def _blocks(section: str) -> list[str]:
    """The ```sh blocks of a README section."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    first, second = (b.strip() for b in _blocks("Set-up"))
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert second.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert second in (ROOT / ".ci" / "run").read_text()


def _stock_python(where: Path) -> Path:
    """A copy of this Python as Debian ships one: pip present, no other package, and the
    PEP 668 marker that makes pip refuse to install outside a virtual environment."""
    import sysconfig

    base = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_path("stdlib"))

    def ignore(folder: str, names: list[str]) -> list[str]:
        if folder.endswith("site-packages"):
            return [n for n in names if not n.startswith("pip")]
        if Path(folder) == stdlib:
            return [n for n in names if n in ("test", "idlelib", "tkinter", "__pycache__")]
        return []

    shutil.copytree(base, where, symlinks=True, ignore=ignore)
    marker = where / stdlib.relative_to(base) / "EXTERNALLY-MANAGED"
    marker.write_text("[externally-managed]\nError=Use apt install python3-xyz, or a venv.\n")
    return where / "bin"


def test_the_first_command_works_as_written(tmp_path: Path):
    """The README's first command, verbatim, in a copy of the repository and with a Python
    that refuses pip outside a venv, as Debian's and Ubuntu's do (the command the README
    gave before fails there): it makes its own venv, installs tracer and runs the demo,
    which writes a trace in the current directory."""
    first = _blocks("Set-up")[0].strip()
    copy = tmp_path / "tracer"
    skip = shutil.ignore_patterns(".venv", ".tools", "build", "node_modules", ".git", "*.trace",
                                  "__pycache__", ".*_cache", "*.egg-info")  # fmt: skip
    shutil.copytree(ROOT, copy, ignore=skip)
    shutil.copytree(ROOT / "traces", copy / "traces", dirs_exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{_stock_python(tmp_path / 'python')}:{env['PATH']}"  # python3: the stock one
    old = subprocess.run(["bash", "-c", "python3 -m pip install ."], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert old.returncode != 0 and "externally-managed-environment" in old.stdout + old.stderr
    proc = subprocess.run(["bash", "-c", first], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert (copy / ".venv" / "bin" / "tracer").exists()
    assert (copy / "tracer-demo.trace").stat().st_size > 0
    assert "tracer demo: the demo agent ran" in proc.stdout


def test_pointing_an_agent_at_upstream_record_and_replay(tmp_path: Path):
    """The README's recipe, run as a script with the real openai SDK as the agent: the
    scripted upstream answers it, tracer record records it, tracer replay serves it back
    offline and the agent ends with the same answer."""
    script = _blocks("Point your agent at tracer")[0]
    ports = {"8765": str(free_port()), "8766": str(free_port())}
    for old, new in ports.items():
        script = script.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    agent = f"{sys.executable} {CLIENT} websocket"
    script = script.replace("python my_agent.py", f"{agent} >> answers.txt")
    lines = []
    for line in script.splitlines():
        lines.append(line.replace("tracer ", f"{sys.executable} -m tracer ", 1)
                     if line.startswith("tracer ") else line)  # fmt: skip
        port = re.search(r"--listen 127\.0\.0\.1:(\d+) &$", line)
        if port:  # wait until the server listens
            lines.append(f"for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port[1]}) "
                         "2>/dev/null && break; sleep 0.1; done")  # fmt: skip
    body = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + "\n".join(lines) + "\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)  # the README's lines give the key each client needs
    proc = subprocess.run(["bash", "-c", body], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    answers = [line for line in (tmp_path / "answers.txt").read_text().splitlines() if line]
    assert len(answers) == 3  # against the upstream, recorded, replayed
    finals = {re.search(r'"final": "([^"]*)"', a)[1] for a in answers}  # type: ignore[index]
    assert len(finals) == 1, finals
    assert (tmp_path / "mine.trace").stat().st_size > 0

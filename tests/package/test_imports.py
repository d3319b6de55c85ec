"""The package's import graph: no cycles, and a core that loads no I/O or UI layer.

Imports are read from the source (every ``import`` statement, also those inside functions,
but not those under ``if TYPE_CHECKING:``), so a lazy import that closes a cycle counts.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tracer"
CORE = ("tracer.trace", "tracer.responses", "tracer.analysis", "tracer.upstream.engine",
        "tracer.upstream.script")  # fmt: skip
FORBIDDEN_IN_CORE = {"asyncio", "rich", "typer", "textual", "websockets", "socket"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, typing: bool = False) -> set[str]:
    """What a module imports; with ``typing``, also under ``if TYPE_CHECKING:`` (an import
    only the type checker follows still ties the two modules together)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not typing:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph(typing: bool = False) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Internal edges per module (with ``typing``, also those under ``TYPE_CHECKING``), and
    the external top-level packages each imports."""
    modules: dict[str, tuple[ast.AST, bool]] = {}
    for path in PACKAGE.rglob("*.py"):
        modules[_module_name(path)] = (ast.parse(path.read_text()), path.name == "__init__.py")
    internal: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for name, (tree, is_package) in modules.items():
        names = _imports(tree, name, is_package, typing)
        internal[name] = {n for n in names if n in modules and n != name}
        external[name] = {n.split(".")[0] for n in names if not n.startswith("tracer")}
    return internal, external


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    internal, _ = _graph()
    assert len(internal) > 50  # the walk found the package
    assert _cycle(internal) is None, " -> ".join(_cycle(internal) or [])


def test_no_cycle_hides_behind_type_checking():
    """Imports under ``if TYPE_CHECKING:`` count too: a cycle the interpreter never runs is
    still two modules that cannot be understood apart (replay/http.py read nine attributes
    of the server it was imported by; capture/http_proxy.py eight of the proxy). A
    package's lazy exports (its ``__init__`` naming a submodule for the type checker) are
    the one exception: the package is not imported by what it names."""
    internal, _ = _graph(typing=True)
    plain, _ = _graph()
    typed = {(m, n) for m, deps in internal.items() for n in deps} - {
        (m, n) for m, deps in plain.items() for n in deps
    }
    lazy = {(m, n) for m, n in typed if n.startswith(m + ".")}
    # The forward proxy names the run CA's type only: cryptography loads when one is made.
    # The guard names a request head's type only: `tracer inspect` checks a --listen
    # address with it and loads no asyncio.
    expected = {
        ("tracer.views.record", "tracer.capture.recorder"),
        ("tracer.views.demo", "tracer.demo.agent"),
        ("tracer.capture.forward", "tracer.capture.ca"),
        ("tracer.wire.guard", "tracer.wire.http"),
    }
    assert typed - lazy == expected, typed - lazy
    assert _cycle(internal) is None, " -> ".join(_cycle(internal) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _core_modules(core: str) -> list[str]:
    internal, _ = _graph()
    return sorted(m for m in internal if m == core or m.startswith(core + "."))


@pytest.mark.parametrize("core", CORE)
def test_the_core_loads_no_io_or_ui_layer(core: str):
    """Importing every module of a core package, in a fresh interpreter, loads none of the
    I/O or UI libraries (what Python really loaded: sys.modules)."""
    modules = _core_modules(core)
    assert modules, core
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(set({sorted(FORBIDDEN_IN_CORE)!r}).intersection(sys.modules))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [], f"{core} loads {out.stdout.strip()}"


def test_the_runtime_check_sees_a_loaded_layer():
    code = "import sys, tracer.upstream.server; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


SAMPLE = PACKAGE.parent / "traces" / "codex.trace"
_LOADED = """
import json, sys
from tracer.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)
"""


def _run_loading(argv: list[str]) -> set[str]:
    """Run the CLI in a fresh interpreter; the modules it loaded by its end."""
    out = subprocess.run([sys.executable, "-c", _LOADED, json.dumps(argv)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    code, modules = json.loads(out.stderr.strip().splitlines()[-1])
    assert code == 0, out.stderr
    return set(modules)


def _under(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(
        m for m in modules if m in prefixes or m.startswith(tuple(p + "." for p in prefixes))
    )


def test_inspect_loads_no_proxy_server_or_importer():
    """A command that reads traces loads the analyses and its view, not the layers other
    commands need: no asyncio, TLS or websockets, no exporters, no YAML, no diff."""
    modules = _run_loading(["inspect", "--json", str(SAMPLE)])
    assert "tracer.analysis.session" in modules  # it ran
    far = ("asyncio", "ssl", "websockets", "yaml", "tracer.capture", "tracer.replay",
           "tracer.upstream", "tracer.export.registry", "tracer.cli.capture_cmds",
           "pydantic", "tracer.analysis.diff", "tracer.export.har")  # fmt: skip
    assert _under(modules, far) == []


def test_record_loads_no_analysis(tmp_path: Path):
    """A recording (launch-and-record of a command that exits at once, to its summary)
    loads the proxy and the trace writer, not the analyses, exports, replay or upstream."""
    trace = tmp_path / "t.trace"
    modules = _run_loading(["record", "--upstream", "ws://127.0.0.1:9", "-o", str(trace),
                            "--listen", "127.0.0.1:0", "--json", "--", sys.executable,
                            "-c", "pass"])  # fmt: skip
    assert "tracer.capture.recorder" in modules and trace.exists()  # it recorded
    # pydantic: typer 0.29 parses every argument through it (10 MB): tracer keeps to <0.29.
    far = ("tracer.analysis", "tracer.export", "tracer.replay", "tracer.upstream",
           "tracer.cli.analysis_cmds", "tracer.cli.export_cmds", "yaml", "pydantic")  # fmt: skip
    assert _under(modules, far) == []


def test_every_command_is_found_in_its_home():
    """`_HOMES` names the module of each command: a run that loads only that module still
    finds its command (else `tracer NAME` would say no such command)."""
    code = (
        "import json, sys\n"
        "import tracer.cli as c\n"
        "print(json.dumps({m: sorted(c._command([n]).commands) for m, ns in c._HOMES.items()"
        " for n in ns[:1]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    code_all = "import json, tracer.cli as c; print(json.dumps(sorted(c._command().commands)))"
    every = json.loads(subprocess.run([sys.executable, "-c", code_all], capture_output=True,
                                      text=True, check=True).stdout)  # fmt: skip
    from tracer.cli import _HOMES

    assert sorted(n for ns in _HOMES.values() for n in ns) == every
    loaded: set[str] = set()
    for module, names in _HOMES.items():  # loaded in this order, each adds its own
        loaded.update(names)
        assert set(found[module]) == loaded, module

"""The design figures #27 asked for, for a checkout of tracer:

    python tests/package/design_metrics.py [CHECKOUT]

files over 400 lines, functions over 60 lines, the options of each command, and the import
graph with and without the imports under ``TYPE_CHECKING`` (and a cycle, if there is one).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]

_OPTIONS = """
import json, typer
from tracer.cli import _command
print(json.dumps({name: sum(isinstance(p, typer.core.TyperOption) and not p.hidden
                            for p in sub.params)
                  for name, sub in _command().commands.items()}))
"""


def sizes(root: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    files, functions = [], []
    for path in sorted((root / "tracer").rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(root))
        if (n := len(text.splitlines())) > 400:
            files.append((name, n))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    functions.append((f"{name}:{node.name}", length))
    return files, functions


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve() if argv else HERE
    files, functions = sizes(root)
    print(f"files over 400 lines: {len(files)} {files}")
    print(f"functions over 60 lines: {len(functions)} {functions}")
    options = subprocess.run([sys.executable, "-c", _OPTIONS], cwd=root, capture_output=True,
                             text=True, check=True)  # fmt: skip
    print(f"options per command: {json.loads(options.stdout)}")
    sys.path.insert(0, str(HERE))
    from tests.package import test_imports as graph

    graph.PACKAGE = root / "tracer"
    plain, _ = graph._graph()
    typed, _ = graph._graph(typing=True)
    edges = {(m, n) for m, deps in plain.items() for n in deps}
    typed_edges = {(m, n) for m, deps in typed.items() for n in deps}
    print(f"import graph: {len(plain)} modules, {len(edges)} edges, {len(typed_edges)} "
          f"counting TYPE_CHECKING; typed-only {sorted(typed_edges - edges)}")  # fmt: skip
    print(f"cycle: {graph._cycle(plain)}; counting TYPE_CHECKING: {graph._cycle(typed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

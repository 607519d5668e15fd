"""Module structure: no import cycles among genaug's modules (module- and function-level imports, as the
house hook counts them), and `genaug --help` / `genaug build --help` import no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str = "genaug") -> dict[str, Path]:
    mods = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the genaug modules it imports (any import statement in it; a submodule's import of its
    own ancestor packages is no edge: Python runs those first anyway)."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".") if is_pkg else module.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                found = _resolve(target, mods)
                if found and found != module and not module.startswith(found + "."):
                    edges[module].add(found)
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_genaug_has_no_import_cycles():
    edges = import_graph()
    assert "genaug.build.pipeline" in edges and "genaug.format" in edges["genaug.build.shard"]
    assert find_cycles(edges) == []


def test_readers_of_output_shards_do_not_use_the_input_sources():
    edges = import_graph()
    for reader in ("genaug.inspect", "genaug.contact_sheet", "genaug.report.reader", "genaug.loader.shardindex"):
        assert not any(m.startswith("genaug.build.sources") for m in edges[reader]), reader


@pytest.mark.parametrize("args", [["--help"], ["build", "--help"], ["inspect", "--help"], ["models", "--help"]])
def test_help_imports_no_torch(args):
    code = ("import sys\nfrom genaug.cli.main import main\nsys.argv = ['genaug'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage: genaug" in result.stdout
    assert result.stdout.splitlines()[-1] == "False", result.stdout[-300:]


@pytest.mark.parametrize("limit", [20, 45, 70, 200])
def test_declared_command_help_is_the_commands_own(limit):
    import importlib

    from genaug.cli.main import COMMANDS

    for name, (target, text) in COMMANDS.items():
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        declared = click.Command(name, help=text).get_short_help_str(limit)
        assert declared == command.get_short_help_str(limit), name

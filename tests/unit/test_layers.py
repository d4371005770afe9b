"""The house rules, checked: no import loops, no module imports a layer above it, modules stay small.

Layers, lowest first: the foundation (errors, models, settings, logging, metrics, permissions, rules,
targets, tls); the store, the platform clients, the Slack Web API client and the sandbox tenants; the core; the Slack
layer; the composition root and the HTTP edge (runtime, app, web, ingest); the operator
tools; the CLI. A module may import its own package and anything in a lower layer.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"

LAYERS: list[set[str]] = [
    {
        "bot",
        "bot.errors",
        "bot.models",
        "bot.settings",
        "bot.logging",
        "bot.metrics",
        "bot.permissions",
        "bot.rules",
        "bot.targets",
        "bot.tls",
    },
    {"bot.store", "bot.platforms", "bot.slack_web", "bot.sandbox"},
    {"bot.core"},
    {"bot.slack"},
    {"bot.runtime", "bot.app", "bot.web", "bot.ingest"},
    {"bot.ops"},
    {"bot.__main__"},
]
# Modules allowed over 400 lines, each with the reason it reads better whole.
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer unit a module belongs to: its package under bot, or the top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def rank(module: str) -> int:
    u = unit(module)
    for i, layer in enumerate(LAYERS):
        if u in layer:
            return i
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def imports() -> dict[str, set[str]]:
    """Every bot module's imports of other bot modules, at any depth of the file."""
    modules = {module_name(p): p for p in BOT.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for target in found:
                if target in modules and target != name:
                    graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_loops() -> None:
    """No two bot modules import each other, directly or around a loop."""
    assert cycles(imports()) == []


def test_no_import_runs_back_up() -> None:
    """A module imports only its own package and lower layers (the Slack layer never reaches a client)."""
    upward = [
        f"{a} -> {b}" for a, targets in imports().items() for b in targets if unit(a) != unit(b) and rank(b) > rank(a)
    ]
    sideways = [
        f"{a} -> {b}"
        for a, targets in imports().items()
        for b in targets
        if unit(a) != unit(b) and rank(b) == rank(a) != 0 and rank(a) != 4
    ]
    assert upward == [] and sideways == []
    slack_to_clients = [
        f"{a} -> {b}" for a, targets in imports().items() for b in targets
        if unit(a) == "bot.slack" and unit(b) == "bot.platforms"
    ]  # fmt: skip
    assert slack_to_clients == []


def test_modules_stay_small() -> None:
    """No module is over 400 lines unless LONG_MODULES says why it reads better whole."""
    long = {
        module_name(p): n
        for p in BOT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES and module_name(p) not in LONG_MODULES
    }
    assert long == {}


def test_the_worker_process_loads_neither_bolt_nor_aiohttp() -> None:
    """The worker runs jobs and posts through ``bot.slack_web`` (httpx): Bolt, the Slack SDK and
    aiohttp (and their memory) are the web process's."""
    import subprocess
    import sys

    heavy = ("slack_bolt", "slack_sdk", "aiohttp")
    code = (
        "import sys, bot.__main__, bot.runtime, bot.ops.serve\n"
        "from bot.slack import reporter, intake_cards, truth, undo_offers\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout[:500]

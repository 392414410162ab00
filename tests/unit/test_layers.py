"""The import structure of jobq_core and dashboard: layers without cycles (docs/design.md,
"Code map").

Every module is read with `ast`; an import at module level or inside a function is an edge
(an import under `if TYPE_CHECKING:` is not: it never runs). Importing `a.b.c` is also an
edge to the package `a.b` (Python runs its __init__ first) unless the importer is inside
`a.b` itself. An edge may point to the importer's layer or a lower one, never up, and no
set of edges may form a cycle. Then every module is imported first in a fresh process:
each must load on its own, whatever the order the rest of the code happens to use.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobq_core", "dashboard")

# Low to high; a module may import from its own layer or a lower one.
LAYERS: dict[str, tuple[str, ...]] = {
    # No Redis: values, codecs, the task table, hooks' base, running one call.
    "pure": ("jobq_core.errors", "jobq_core.discover", "jobq_core.durations", "jobq_core.tracing",
             "jobq_core.config", "jobq_core.keys", "jobq_core.job", "jobq_core.schedule",
             "jobq_core.context", "jobq_core.registry", "jobq_core.hooks", "jobq_core.runner",
             "jobq_core.options", "jobq_core.groupcommit",
             "jobq_core.grouping", "jobq_core.joblog", "jobq_core.luasource", "jobq_core.nap",
             "jobq_core.escapes"),
    # A client and the Lua scripts.
    "redis": ("jobq_core.connection", "jobq_core.wire", "jobq_core.follow", "jobq_core.replies",
              "jobq_core.replication", "jobq_core.scripts", "jobq_core.layout"),
    # What producers, readers and the worker share.
    "services": ("jobq_core.queue", "jobq_core.inspect", "jobq_core.dependencies",
                 "jobq_core.aqueue", "jobq_core.limits", "jobq_core.scheduler",
                 "jobq_core.task", "jobq_core.workers", "jobq_core.eager", "jobq_core.spec",
                 "jobq_core.records", "jobq_core.problems", "jobq_core.nodes",
                 "jobq_core.runtimes", "jobq_core.logread"),
    # Operator actions over many jobs.
    "operators": ("jobq_core.admin", "jobq_core.bulk", "jobq_core.errorgroups"),
    # The worker process and its parts.
    "process": ("jobq_core.worker", "jobq_core.worker.*"),
    # The public API: jobq_core/__init__.py re-exports the layers below.
    "api": ("jobq_core",),
    # The dashboard: leaf helpers and view models, then blueprints, then the app factory.
    "dashboard leaves": ("dashboard.*",),
    "dashboard views": ("dashboard.views", "dashboard.views.*"),
    "dashboard app": ("dashboard", "dashboard.app", "dashboard.serving", "dashboard.wsgi"),
    # Programs: the CLI (which serves the dashboard), the embedded Redis, the demo.
    "entry": ("jobq_core.cli", "jobq_core.cli.*", "jobq_core.__main__", "jobq_core.embedded",
              "jobq_core.demo", "jobq_core.server", "jobq_core.localcluster"),
}

def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def layer_of(module: str) -> int:
    """Index in LAYERS of the most specific pattern that names `module`."""
    best: tuple[int, int] | None = None  # (specificity, layer)
    for rank, patterns in enumerate(LAYERS.values()):
        for pattern in patterns:
            if pattern == module:
                score = 1000
            elif pattern.endswith(".*") and module.startswith(pattern[:-1]):
                score = len(pattern)
            else:
                continue
            if best is None or score > best[0]:
                best = (score, rank)
    assert best is not None, f"{module} has no layer: add it to LAYERS in {__file__}"
    return best[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imported(module: str, is_package: bool, source: str) -> Iterator[tuple[str, int]]:
    """(module, line) of every import `module` runs, at load or in a function."""
    package = module if is_package else module.rpartition(".")[0]

    def walk(node: ast.AST) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    yield from walk_stmt(stmt)
            else:
                yield from walk_stmt(child)

    def walk_stmt(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno
        else:
            yield from walk(node)

    yield from walk(ast.parse(source))


def edges() -> dict[tuple[str, str], int]:
    """(importer, imported) -> line, for imports between modules of PACKAGES."""
    found: dict[tuple[str, str], int] = {}
    for module, path in MODULES.items():
        for target, line in _imported(module, path.name == "__init__.py", path.read_text()):
            parts = target.split(".")
            if parts[0] not in PACKAGES:
                continue
            # The packages Python initialises on the way, unless the importer is inside
            # (then they are initialised before it anyway), and the module itself.
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                inside = module == name or module.startswith(name + ".")
                if name in MODULES and name != module and (i == len(parts) or not inside):
                    found.setdefault((module, name), line)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_import_goes_up_a_layer() -> None:
    names = list(LAYERS)
    upward = [f"{MODULES[a].relative_to(ROOT)}:{line}: {a} ({names[layer_of(a)]}) imports "
              f"{b} ({names[layer_of(b)]})"
              for (a, b), line in sorted(edges().items())
              if layer_of(b) > layer_of(a)]
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_imports_form_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        graph.setdefault(a, set()).add(b)
    assert cycles(graph) == []


def test_the_checks_see_an_upward_edge_and_a_cycle() -> None:
    # The checker itself: a lazy import is an edge, a TYPE_CHECKING one is not.
    source = textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .admin import Admin
        def f():
            from .worker import Worker
    """)
    found = {t for t, _ in _imported("jobq_core.keys", False, source)}
    assert "jobq_core.worker" in found and "jobq_core.admin" not in found
    assert layer_of("jobq_core.worker") > layer_of("jobq_core.keys")
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def test_no_module_over_500_lines_and_no_function_over_60() -> None:
    # Past these a module or a function has more than one job: split it (STYLE.md).
    too_big = []
    for module, path in MODULES.items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{module}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{module}.{node.name} (line {node.lineno}): {length} lines")
    assert not too_big, "\n".join(too_big)


# Imports the third-party and standard modules our modules use once, then forks a child
# per module of ours: each child starts with none of our modules loaded and imports just
# that one, so an import-order cycle shows as a failed import. Forking keeps this fast.
# A name starting with "!" is imported with its top package's __init__ not run (an empty
# package in its place): that __init__ imports most of the package in an order that can hide
# a cycle (jobq_core/__init__.py once did: it had to import dependencies before admin).
_PROBE = textwrap.dedent("""
    import importlib, importlib.util, os, sys, traceback, types
    split = sys.argv.index("--")
    external, names = sys.argv[1:split], sys.argv[split + 1:]
    for pre in external:
        try:
            importlib.import_module(pre)
        except Exception:  # an optional extra not installed, or a name that is an attribute
            pass
    assert not any(m.split(".")[0] in ("jobq_core", "dashboard") for m in sys.modules)

    def load(name):
        if name.startswith("!"):
            name = name[1:]
            root = name.split(".")[0]
            spec = importlib.util.find_spec(root)
            package = types.ModuleType(root)
            package.__path__ = list(spec.submodule_search_locations)
            package.__spec__, package.__file__ = spec, spec.origin
            sys.modules[root] = package
        importlib.import_module(name)

    failed, running = 0, set()
    for name in names:
        if len(running) >= 4:
            pid, status = os.wait()
            running.discard(pid)
            failed += status != 0
        pid = os.fork()
        if pid == 0:
            try:
                load(name)
            except BaseException:
                print(f"--- import {name} failed:", flush=True)
                traceback.print_exc(file=sys.stdout)
                sys.stdout.flush()
                os._exit(1)
            os._exit(0)
        running.add(pid)
    for pid in running:
        failed += os.waitpid(pid, 0)[1] != 0
    sys.exit(1 if failed else 0)
""")


def test_every_module_loads_first_in_a_fresh_process() -> None:
    # dashboard.wsgi builds the app at import and asks Redis for the session key: point it
    # at a socket that does not exist, so it fails at once (it carries on without).
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "JOBQ_REDIS_URL": "unix:///nonexistent/jobq-test-layers.sock"}
    # __main__ runs the CLI; its imports are checked above.
    names = sorted(m for m in MODULES if not m.endswith("__main__"))
    # Without their top package's __init__, unless they import the top package itself.
    imports_root = {a for a, b in edges() if b in PACKAGES}
    names = [n if n in PACKAGES or n in imports_root else f"!{n}" for n in names]
    external = sorted({target for module, path in MODULES.items()
                       for target, _ in _imported(module, path.name == "__init__.py",
                                                  path.read_text())
                       if target and target.split(".")[0] not in PACKAGES})
    out = subprocess.run([sys.executable, "-c", _PROBE, *external, "--", *names], cwd=ROOT,
                         env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr

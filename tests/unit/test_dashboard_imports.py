"""The dashboard's views import from leaf modules (engine handle, guard, render, actions,
params ...), never from the app factory, each other, or anyone's private names."""

from __future__ import annotations

import ast
from pathlib import Path

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module as written, relative to dashboard/views/, names) of every from-import."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            out.append((module, [a.name for a in node.names]))
    return out


def test_views_import_no_factory_no_sibling_and_no_private_names() -> None:
    bad = []
    for path in sorted(VIEWS.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for module, names in _imports(path):
            if module in ("..app", "dashboard.app") or (module.startswith(".")
                                                        and not module.startswith("..")):
                bad.append(f"{path.name}: from {module} import {', '.join(names)}")
            elif any(n.startswith("_") for n in names):
                bad.append(f"{path.name}: private {', '.join(names)} from {module}")
    assert bad == []

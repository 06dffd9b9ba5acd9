"""The layout DESIGN.md draws, checked on the imports: components talk only in messages.

gateway, broker, device and session never import one another, and protocol/ imports none of
them (nor the launcher package, cellbus/, which is the one place that imports them all). The
one exception: the device's template process preloads the session runtime it forks workers
from (``device/template.py`` imports ``session.worker``, inside ``Template.__init__``, and
``session.backends`` to find the kernels it offers).
Every import statement counts, at any depth (a function-level import is still an import).
"""

from __future__ import annotations

import ast
from pathlib import Path

from harness import ROOT

COMPONENTS = ("gateway", "broker", "device", "session")
PACKAGES = ("protocol", *COMPONENTS, "cellbus")
#: (importing module, imported module) pairs allowed across components.
EXCEPTIONS = {("device.template", "session.worker"), ("device.template", "session.backends")}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    """The absolute names of the modules ``module``'s imports name."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package the module is in
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def violations(root: Path) -> list[str]:
    """Each import across the layout's lines, as "importer -> imported"."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(root, path)
            tree = ast.parse(path.read_text(), str(path))
            for name in sorted(imported(module, path.name == "__init__.py", tree)):
                target = name.split(".")[0]
                if target == package or target not in PACKAGES or package == "cellbus":
                    continue
                if target == "protocol" and package != "protocol":
                    continue
                if any(module == importer and (name == allowed or name.startswith(allowed + "."))
                       for importer, allowed in EXCEPTIONS):
                    continue
                found.append(f"{module} -> {name}")
    return found


def test_no_component_imports_another() -> None:
    assert violations(ROOT) == []


def test_the_check_sees_each_kind_of_crossing(tmp_path: Path) -> None:
    """A tree with one import of each forbidden kind (and the allowed ones) beside them."""
    files = {
        "gateway/__init__.py": "",
        "gateway/handler.py": "from broker.store import open_store\nfrom protocol import wire\n"
                              "from . import handler\nfrom .ws import x\n",
        "protocol/__init__.py": "",
        "protocol/bad.py": "def later():\n    import gateway.app\n",
        "broker/__init__.py": "",
        "broker/sub/__init__.py": "from .. import cellbus_like\n",
        "broker/uses_launcher.py": "from cellbus.up import main\n",
        "device/__init__.py": "",
        "device/template.py": "def f():\n    from session.worker import serve\n",
        "device/router.py": "import session.blocks\n",
        "session/__init__.py": "",
        "session/worker.py": "from device import limits\n",
        "cellbus/__init__.py": "import broker, device, gateway\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == [
        "protocol.bad -> gateway.app",
        "gateway.handler -> broker.store", "gateway.handler -> broker.store.open_store",
        "broker.uses_launcher -> cellbus.up", "broker.uses_launcher -> cellbus.up.main",
        "device.router -> session.blocks",
        "session.worker -> device", "session.worker -> device.limits",
    ]

"""The layout DESIGN.md draws, checked on the imports: components talk only in messages.

gateway, broker, device and session never import one another, and protocol/ imports none of
them (nor the launcher package, cellbus/, which is the one place that imports them all). The
one exception: the device's template process preloads the session runtime it forks workers
from (``device/template.py`` imports ``session.worker``, inside ``Template.__init__``, and
``session.backends`` and ``session.kernelspecs`` to find the kernels it offers; the device
checks its ``--backend`` through the template's ``backend_problem``).
Every import statement counts, at any depth (a function-level import is still an import).
"""

from __future__ import annotations

import ast
from pathlib import Path

from harness import ROOT

COMPONENTS = ("gateway", "broker", "device", "session")
PACKAGES = ("protocol", *COMPONENTS, "cellbus")
#: (importing module, imported module) pairs allowed across components.
EXCEPTIONS = {("device.template", "session.worker"), ("device.template", "session.backends"),
              ("device.template", "session.kernelspecs")}


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


# -- the broker's modules import in layers --------------------------------------------------

#: namedtuple's public methods, which are spelled with an underscore.
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make"})
#: Other public names spelled with an underscore.
PUBLIC_UNDERSCORED = frozenset({"os._exit"})


def broker_imports(root: Path) -> dict[str, set[str]]:
    """Each top-level module of broker/ -> the modules of broker/ it imports (any import
    statement, TYPE_CHECKING ones too); broker.store and its backends count as one."""

    def own(name: str) -> str | None:
        parts = name.split(".")
        if parts[0] != "broker" or len(parts) < 2:
            return None
        candidate = ".".join(parts[:2])
        if (root / "broker" / parts[1]).is_dir() or (root / "broker" / f"{parts[1]}.py").exists():
            return candidate
        return None

    graph: dict[str, set[str]] = {}
    for path in sorted((root / "broker").glob("*.py")):
        module = module_name(root, path)
        tree = ast.parse(path.read_text(), str(path))
        names = imported(module, path.name == "__init__.py", tree)
        graph[module] = {m for m in map(own, names) if m is not None and m != module}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as [a, b, ..., a], or [] if it has none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return []
        for target in sorted(graph.get(node, ())):
            if cycle := visit(target, [*path, node]):
                return cycle
        done.add(node)
        return []

    for node in sorted(graph):
        if cycle := visit(node, []):
            return cycle
    return []


def private_reaches(root: Path, package: str = "broker") -> list[str]:
    """Each ``x._name`` in ``package`` where ``x`` is not ``self`` or ``cls``: one object
    reaching into another's private state."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute) or isinstance(node.value, ast.Name) and (
                    node.value.id in ("self", "cls")):
                continue
            if (node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in NAMEDTUPLE_API
                    and ast.unparse(node) not in PUBLIC_UNDERSCORED):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_brokers_modules_import_in_layers() -> None:
    graph = broker_imports(ROOT)
    assert {"broker.node", "broker.dispatch", "broker.intake"} <= set(graph)
    assert import_cycle(graph) == []
    # One owner of dispatch: the modules that answer gateways or watch devices send to
    # devices only through it, and it knows none of them.
    assert graph["broker.dispatch"] <= {"broker.capacity", "broker.handed", "broker.placement",
                                        "broker.sessions", "broker.store"}


def test_no_broker_module_reaches_into_anothers_private_state() -> None:
    assert private_reaches(ROOT) == []


def test_no_device_or_session_module_reaches_into_anothers_private_state() -> None:
    """The device's router, drain, overseer and workers, and the session's worker, request
    loop and link output, talk through public methods (they were split out of one another)."""
    assert private_reaches(ROOT, "device") == []
    assert private_reaches(ROOT, "session") == []


def test_the_layer_checks_see_a_cycle_and_a_private_reach(tmp_path: Path) -> None:
    """A broker/ where node -> intake -> control -> node (a TYPE_CHECKING import counts)."""
    files = {
        "broker/__init__.py": "",
        "broker/node.py": "from .intake import Intake\nfrom .store import Request\n",
        "broker/intake.py": "from . import control\n",
        "broker/control.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                             "    from .node import Broker\n"
                             "def f(broker):\n    return broker._held\n",
        "broker/store/__init__.py": "from .sqlite import SQLiteStore\n",
        "broker/store/sqlite.py": "from . import base\nparts = base._replace\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = broker_imports(tmp_path)
    assert graph["broker.node"] == {"broker.intake", "broker.store"}
    assert import_cycle(graph) == ["broker.control", "broker.node", "broker.intake",
                                   "broker.control"]
    assert private_reaches(tmp_path) == ["broker/control.py:5: broker._held"]
    (tmp_path / "broker/control.py").write_text("from .store import Request\n")
    assert import_cycle(broker_imports(tmp_path)) == []


def test_the_private_reach_check_sees_into_device(tmp_path: Path) -> None:
    """``os._exit`` is public; a drain's private futures are not."""
    (tmp_path / "device").mkdir()
    (tmp_path / "device/router.py").write_text(
        "import os\ndef f(router):\n    os._exit(1)\n    return router.drain._replies\n")
    assert private_reaches(tmp_path, "device") == ["device/router.py:4: router.drain._replies"]


def test_only_dispatch_sends_to_devices() -> None:
    """The device socket is made and read by broker/node.py; every send goes through
    broker/dispatch.py, which is given the socket."""
    for path in sorted((ROOT / "broker").glob("*.py")):
        text = path.read_text()
        if path.name == "node.py":
            assert "device_sock.send" not in text
        elif path.name != "dispatch.py":
            assert "device_sock" not in text, path.name

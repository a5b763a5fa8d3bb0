"""Product code uses third-party libraries through their public APIs only.

What a library keeps private (a name with a leading underscore, or one of the few
unprefixed internals in ``UNPREFIXED_INTERNALS``) changes without notice on an upgrade.
Where the platform still needs one, it lives in a compat module named for the library
(``shared/compat/``, ``gateway/compat/``), whose own test fails when the library changes
underneath. Everywhere else, this test reads the syntax tree: a private name is ours when
our code defines it (on ``self``: in the class or one of our classes it derives from;
otherwise: in the same package, or in a module of ours reached by name), and anything else
is a library's.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import PRODUCT_SOURCES, ROOT, product_modules

OWN_PACKAGES = frozenset(
    path.name for root in PRODUCT_SOURCES for path in root.iterdir() if path.is_dir()
)
# Internals without the underscore: named here once a review found code reaching into them.
UNPREFIXED_INTERNALS = frozenset(
    {
        "user_middleware",  # Starlette's list behind add_middleware
        "middleware_stack",  # Starlette's lazily built stack
        "build_middleware_stack",
        "transport_factory",  # aiormq's, smuggled through aio-pika's kwargs
    }
)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _in_compat_module(path: Path) -> bool:
    return path.parent.name == "compat"


@dataclass
class OwnClass:
    bases: list[str]
    names: set[str] = field(default_factory=set)


def _defined_names(tree: ast.AST) -> set[str]:
    """Every name a module binds anywhere: functions, classes, assignments (attributes of
    anything included), imports, parameters."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """The ids of every node inside an annotation (never evaluated: postponed)."""
    annotations: list[ast.expr | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
    return {id(inner) for top in annotations if top is not None for inner in ast.walk(top)}


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Subscript):  # Generic[T], Protocol[...]
        return _base_name(node.value)
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _own_classes(modules: list[Path]) -> dict[str, list[OwnClass]]:
    classes: dict[str, list[OwnClass]] = {}
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                own = OwnClass([_base_name(base) for base in node.bases])
                own.names = _defined_names(node)
                classes.setdefault(node.name, []).append(own)
    return classes


def _defined_in_hierarchy(name: str, cls: str, classes: dict[str, list[OwnClass]]) -> bool:
    """Whether one of our classes called ``cls``, or one of our classes it derives from,
    defines ``name`` (a base that is not ours defines nothing of ours)."""
    seen: set[str] = set()
    pending = [cls]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for own in classes.get(current, []):
            if name in own.names:
                return True
            pending.extend(own.bases)
    return False


class Finder(ast.NodeVisitor):
    def __init__(self, path: Path, classes: dict[str, list[OwnClass]], members: set[str]) -> None:
        self.path = path
        self.classes = classes
        self.members = members  # every name bound in this module's package
        self.tree = ast.parse(path.read_text())
        self.own_module_aliases: set[str] = set()
        self.stdlib_aliases: set[str] = set()
        self.annotations = _annotation_nodes(self.tree)
        self.enclosing: list[str] = []
        self.found: list[str] = []

    def run(self) -> list[str]:
        self.visit(self.tree)
        return self.found

    def _flag(self, node: ast.AST, what: str) -> None:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        self.found.append(f"{where}:{getattr(node, 'lineno', 0)}: {what}")

    def _ours(self, name: str) -> bool:
        return name in self.members

    # -- imports ---------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in OWN_PACKAGES:
                self.own_module_aliases.add(alias.asname or top)
            elif top in sys.stdlib_module_names:
                self.stdlib_aliases.add(alias.asname or top)
            elif any(_is_private(part) for part in alias.name.split(".")):
                self._flag(node, f"import of a private module: {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module.split(".")[0] in OWN_PACKAGES:
            for alias in node.names:
                self.own_module_aliases.add(alias.asname or alias.name)
            return
        if any(_is_private(part) for part in module.split(".")):
            self._flag(node, f"import from a private module: {module}")
        for alias in node.names:
            if _is_private(alias.name):
                self._flag(node, f"import of a private name: {module}.{alias.name}")

    # -- attributes ------------------------------------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.enclosing.append(node.name)
        self.generic_visit(node)
        self.enclosing.pop()

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._check(node, node.value, node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        # getattr(x, "_name"), setattr(...), hasattr(...), delattr(...)
        function = node.func
        if (
            isinstance(function, ast.Name)
            and function.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            self._check(node, node.args[0], node.args[1].value)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice
        if (
            isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and key.value in UNPREFIXED_INTERNALS
        ):
            self._flag(node, f"a library's internal key: [{key.value!r}]")
        self.generic_visit(node)

    def _check(self, node: ast.AST, receiver: ast.expr, name: str) -> None:
        if name in UNPREFIXED_INTERNALS:
            self._flag(node, f"a library's internal attribute: .{name}")
            return
        if not _is_private(name):
            return
        is_super = (
            isinstance(receiver, ast.Call)
            and isinstance(receiver.func, ast.Name)
            and receiver.func.id == "super"
        )
        if is_super or (isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")):
            # Ours only if our class, or one of our classes it derives from, defines it.
            if self.enclosing and _defined_in_hierarchy(name, self.enclosing[-1], self.classes):
                return
            self._flag(node, f"a base class's private attribute: .{name}")
        elif isinstance(receiver, ast.Name) and receiver.id in self.own_module_aliases:
            return  # a private name of one of our own modules
        elif (
            id(node) in self.annotations
            and isinstance(receiver, ast.Name)
            and receiver.id in self.stdlib_aliases
        ):
            return  # a type the standard library's stubs name privately (``zlib._Compress``)
        elif not self._ours(name):
            self._flag(node, f"a library's private attribute: .{name}")


def _names_by_package(modules: list[Path]) -> dict[Path, set[str]]:
    """Every name bound in each package (a folder of modules), for ``Finder``'s ``members``."""
    names: dict[Path, set[str]] = {}
    for path in modules:
        names.setdefault(path.parent, set()).update(_defined_names(ast.parse(path.read_text())))
    return names


def _violations() -> list[str]:
    modules = product_modules(migrations=True)
    classes = _own_classes(modules)
    by_package = _names_by_package(modules)
    return [
        finding
        for path in modules
        if not _in_compat_module(path)
        for finding in Finder(path, classes, by_package[path.parent]).run()
    ]


def test_product_code_reaches_no_library_internals_outside_the_compat_modules() -> None:
    assert _violations() == [], (
        "use the library's public API, or move the access into the library's compat module "
        "(shared/compat/<library>.py, gateway/compat/<library>.py) with a test of its own"
    )


def _findings_in(source: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "probe.py"
    path.write_text(source)
    return Finder(path, _own_classes([path]), _names_by_package([path])[path.parent]).run()


def test_the_check_tells_a_librarys_private_names_from_ours(tmp_path: Path) -> None:
    source = """
import sqlalchemy._private
from asyncpg.protocol import _helper
from shared import db as db_module
import asyncio
import zlib


class Ours(asyncio.Protocol):
    def __init__(self) -> None:
        self._state = 0

    def digest(self) -> zlib._Compress:
        return zlib.compressobj()

    def use(self, other: "Ours", adapter: object, app: object) -> None:
        self._state += other._state
        db_module._check_on_checkout
        adapter._transaction
        getattr(adapter, "_transport")
        self._loop
        app.user_middleware
        kwargs = {}
        kwargs["transport_factory"] = 1
"""
    found = [line.split(": ", 1)[1] for line in _findings_in(source, tmp_path)]
    assert found == [
        "import of a private module: sqlalchemy._private",
        "import of a private name: asyncpg.protocol._helper",
        "a library's private attribute: ._transaction",
        "a library's private attribute: ._transport",
        "a base class's private attribute: ._loop",
        "a library's internal attribute: .user_middleware",
        "a library's internal key: ['transport_factory']",
    ]

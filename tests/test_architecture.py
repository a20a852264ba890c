"""The shape of the code: layering, public names, the exception tree."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import lumbar
from lumbar import errors

pytestmark = pytest.mark.unit

SOURCE = Path(lumbar.__file__).parent

# Pure domain packages may import none of these (design.md: dependencies point inward).
PURE = ("protocol", "instruments", "analysis", "synthesis", "design", "individual")
FORBIDDEN_IN_PURE = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "typer",
    "click",
    "rich",
    "lumbar.store",
    "lumbar.operations",
    "lumbar.web",
    "lumbar.cli",
    "lumbar.report",
    "lumbar.simulate",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _lumbar_dependencies(paths: list[Path]) -> set[Path]:
    """Every lumbar module the given files import, followed transitively."""
    seen: set[Path] = set()
    queue = list(paths)
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if not name.startswith("lumbar."):
                continue
            target = SOURCE.joinpath(*name.split(".")[1:])
            for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                if candidate.is_file():
                    queue.append(candidate)
    return seen


def _violations(package: str) -> list[str]:
    folder = SOURCE / package
    bad = []
    for path in sorted(_lumbar_dependencies(sorted(folder.rglob("*.py")))):
        for name in _imports(path):
            if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN_IN_PURE):
                bad.append(f"{path.relative_to(SOURCE)} imports {name}")
    return bad


@pytest.mark.parametrize("package", [p for p in PURE if (SOURCE / p).is_dir()])
def test_pure_packages_import_no_database_web_or_cli_code(package: str) -> None:
    # Checked through every lumbar module they reach (errors, _declared, ...), not only their own.
    assert _violations(package) == []


@pytest.mark.parametrize(
    ("package", "banned"),
    [
        # The CLI is a thin shell: it calls operations, never the tables or SQL itself.
        ("cli", ("sqlalchemy", "lumbar.store.schema", "lumbar.store.audit")),
        # The store knows nothing of the operations built on it.
        ("store", ("lumbar.operations", "lumbar.cli", "typer", "rich")),
        # The report and the application read a trial through operations, never the store.
        ("report", ("sqlalchemy", "lumbar.store", "lumbar.application", "lumbar.cli")),
        ("application", ("sqlalchemy", "lumbar.store", "lumbar.cli", "typer", "rich")),
    ],
)
def test_layers_keep_to_their_side(package: str, banned: tuple[str, ...]) -> None:
    bad = [
        f"{path.relative_to(SOURCE)} imports {name}"
        for path in sorted((SOURCE / package).rglob("*.py"))
        for name in _imports(path)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]
    assert bad == []


def test_synthesis_imports_nothing_of_the_analysis() -> None:
    # A trial joins the evidence through lumbar.application; Estimate lives in lumbar.estimates.
    reached = _lumbar_dependencies(sorted((SOURCE / "synthesis").rglob("*.py")))
    assert SOURCE / "estimates.py" in reached
    assert [str(path.relative_to(SOURCE)) for path in reached if "analysis" in path.parts] == []


def test_pure_packages_reach_the_shared_private_modules() -> None:
    reached = _lumbar_dependencies(sorted((SOURCE / "protocol").rglob("*.py")))
    assert SOURCE / "_declared.py" in reached
    assert SOURCE / "errors.py" in reached


def test_the_layering_check_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import sqlalchemy\nfrom lumbar.cli import app\nfrom . import sibling\n")
    assert _imports(sample) == {"sqlalchemy", "lumbar.cli"}


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(lumbar.__path__, prefix="lumbar.")
        if not info.name.endswith("__main__") and ".migrations" not in info.name
    ]


@pytest.mark.parametrize("module_name", _modules())
def test_every_module_declares_its_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    if module_name.endswith(".protocols"):
        return  # a data folder
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"


def test_the_lazy_operations_package_names_each_public_name_once() -> None:
    """lumbar.operations loads its modules on first use; its map of names must be whole."""
    import lumbar.operations as operations

    where = operations._WHERE
    assert set(where) == set(operations.__all__)
    # A public name equal to a submodule's would be replaced by the module once the
    # module is imported (Python sets the package attribute), whatever the lazy map says.
    submodules = {info.name for info in pkgutil.iter_modules(operations.__path__)}
    assert not set(where) & submodules
    for name, module in where.items():
        assert getattr(importlib.import_module(module), name) is getattr(operations, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = operations.nothing


def test_exception_tree_has_one_root() -> None:
    for name in ("ProtocolError", "InstrumentError", "AnswerError"):
        cls = getattr(errors, name)
        assert issubclass(cls, errors.LumbarError)
    # Not a ValueError: pydantic must never swallow one into its own errors.
    assert not issubclass(errors.LumbarError, ValueError)


def test_error_message_lists_where_rule_value_and_what_to_do() -> None:
    error = errors.AnswerError(
        "answers to rdq were not accepted",
        [errors.Problem("rdq: item rdq_01", "must be 0 or 1", 7, "use the option code")],
    )
    assert str(error) == (
        "answers to rdq were not accepted (1 problem):\n"
        "  rdq: item rdq_01: must be 0 or 1 (received 7)\n"
        "    what to do: use the option code"
    )

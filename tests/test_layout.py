"""The rules between the parts: the ports are plain Python, testable without a database."""

from __future__ import annotations

import subprocess
import sys

PORTS = (
    "limen.experiment.param_domain",
    "limen.experiment.msq",
    "limen.experiment.search_strategy",
    "limen.experiment.random_strategy",
    "limen.experiment.feedback_controller",
    "limen.experiment.reducer",
)


def test_the_ports_import_neither_optuna_nor_the_adapters():
    code = (
        "import importlib, sys\n"
        f"for name in {PORTS!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('optuna', 'limen.adapters'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


HEAVY = ("skops", "sklearn", "scipy.stats", "torch")


def test_limen_status_imports_neither_scikit_learn_nor_skops(tmp_path):
    # A reader of results needs none of them: skops alone lists every scikit-learn estimator
    # (and imports torch where it is installed) when imported, seconds on every command.
    import toy_sfd
    from limen.experiment import UniversalExperimentLoop

    directory = tmp_path / "exp"
    UniversalExperimentLoop(
        sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=directory, objective="score"
    ).run("toy", n_permutations=2, progress_bar=False)
    code = (
        "import sys\n"
        "from limen.cli import main\n"
        f"assert main(['status', {str(directory)!r}]) == 0\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "toy" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_plain_python_strategy_runs_through_the_msq_without_a_study():
    from limen.experiment import MSQ, ParamDomain
    from limen.experiment.random_strategy import RandomStrategy

    domain = ParamDomain({"a": [1, 2, 3], "b": ["x", "y"]})
    msq = MSQ(RandomStrategy(domain, seed=0), domain)
    combos = [next(msq).combo for _ in range(4)]
    assert len({tuple(sorted(c.items())) for c in combos}) == 4


def test_no_study_key_is_spelled_outside_the_keys_module():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spelled = []
    for path in [*root.glob("limen/**/*.py"), *root.glob("adapters/**/*.py")]:
        if path.name == "study_keys.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        spelled += [
            f"{path.relative_to(root)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("limen:")
            and not node.value.startswith("limen: ")
            and id(node) not in docstrings
        ]
    assert spelled == []


# What counts as running SQL: the statement builders of SQLAlchemy, the sqlite3 driver, and a
# statement written out as a string and handed to a connection.
_SQL_BUILDERS = frozenset({"select", "insert", "update", "delete", "text", "Table"})
_EXECUTORS = frozenset({"execute", "exec_driver_sql", "executescript", "executemany"})
_OPTUNA_INTERNALS = "adapters/storage/optuna_internals.py"


def _library_modules() -> list[tuple[str, object]]:
    """``(path relative to the repository, parsed module)`` of every module Limen ships."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    paths = [*root.glob("limen/**/*.py"), *root.glob("adapters/**/*.py")]
    return [(path.relative_to(root).as_posix(), ast.parse(path.read_text())) for path in paths]


def _private_optuna_storage_imports(tree: object) -> list[int]:
    """Lines importing a private module of ``optuna.storages`` (``_rdb``, ``_cached_storage``)."""
    import ast

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(name.startswith("optuna.storages._") for name in names):
            lines.append(node.lineno)
    return lines


def _sql_lines(tree: object) -> list[int]:
    """Lines that import a SQL builder or sqlite3, or run a statement given as a string."""
    import ast

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == "sqlite3" for alias in node.names
        ):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] == "sqlite3" or (
                node.module.split(".")[0] == "sqlalchemy"
                and any(alias.name in _SQL_BUILDERS for alias in node.names)
            ):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _EXECUTORS
            and node.args
            and isinstance(node.args[0], ast.Constant | ast.JoinedStr)
        ):
            lines.append(node.lineno)
    return lines


def test_optunas_private_storage_modules_are_used_in_one_module_only():
    found = [
        f"{path}:{line}"
        for path, tree in _library_modules()
        if path != _OPTUNA_INTERNALS
        for line in _private_optuna_storage_imports(tree)
    ]
    assert found == []


def test_no_sql_runs_outside_the_storage_package():
    found = [
        f"{path}:{line}"
        for path, tree in _library_modules()
        if not path.startswith("adapters/storage/")
        for line in _sql_lines(tree)
    ]
    assert found == []


def test_the_walks_see_the_storage_package_and_what_they_look_for():
    modules = dict(_library_modules())
    assert _private_optuna_storage_imports(modules[_OPTUNA_INTERNALS])
    assert _sql_lines(modules["adapters/storage/probe.py"])
    assert _sql_lines(modules["adapters/storage/statements.py"])


def _module_map() -> set[str]:
    """The paths the README's module map names: `dir/a.py`, `b.py` is dir/a.py and dir/b.py."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("| module | what it holds |", 1)[1].split("\n\n", 1)[0]
    named: set[str] = set()
    for row in table.splitlines()[2:]:
        cells = re.findall(r"`([^`]+)`", row.split("|")[1])
        folder = ""
        for cell in cells:
            if "/" in cell.rstrip("/"):
                folder = cell.rstrip("/").rsplit("/", 1)[0] + "/" if cell.endswith(".py") else ""
                named.add(cell)
            else:
                named.add(folder + cell)
    return named


def test_the_readme_module_map_matches_the_tree():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    named = _module_map()
    missing = sorted(n for n in named if not (root / n).exists())
    modules = [
        path.relative_to(root).as_posix()
        for path in [*root.glob("limen/**/*.py"), *root.glob("adapters/**/*.py")]
        if path.name != "__init__.py"
    ]
    unnamed = sorted(
        m
        for m in modules
        if m not in named and not any(m.startswith(n) for n in named if n[-1] == "/")
    )
    assert missing == [], "the README names modules that do not exist"
    assert unnamed == [], "modules the README's module map does not name"


def test_every_module_declares_all():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    lacking = []
    for path in [*root.glob("limen/**/*.py"), *root.glob("adapters/**/*.py")]:
        tree = ast.parse(path.read_text())
        declared = any(
            isinstance(node, ast.Assign | ast.AnnAssign)
            and any(
                isinstance(target, ast.Name) and target.id == "__all__"
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            )
            for node in tree.body
        )
        if not declared:
            lacking.append(path.relative_to(root).as_posix())
    assert sorted(lacking) == []

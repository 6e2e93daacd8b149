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
    for path in [*root.glob("limen/**/*.py"), *root.glob("adapters/*.py")]:
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

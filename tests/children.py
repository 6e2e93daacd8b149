"""Experiments in child processes that a test kills, interrupts or races against.

A fresh interpreter spends about three seconds importing Limen, Optuna, SQLAlchemy, pandas and
scikit-learn before its first round, and the crash, worker and start-up tests launch dozens of
children. Here each child is forked from one server per test process that has imported all of
that already (multiprocessing's ``forkserver`` with a preload list), so it reaches its first round
in milliseconds. It is still a separate process with its own connections, its own files and its
own signal handlers, and it is killed with real signals.

Tests whose subject is a *fresh* interpreter (a new process decoding stored tokens, the CLI as
typed in a shell, the examples) keep launching ``sys.executable`` with ``subprocess``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import traceback
import weakref
from pathlib import Path

__all__ = ["CONTEXT", "Child", "run_cli", "run_script", "start_script"]

# What the children of these tests import; the server imports it once, before its first fork.
PRELOAD = [
    "numpy",
    "pandas",
    "sqlalchemy",
    "optuna",
    "optuna.storages._rdb.models",
    "alembic.migration",
    "alembic.script",
    "optuna_dashboard",
    "sklearn.linear_model",
    "sklearn.preprocessing",
    "torch",
    "optuna._gp.gp",
    "limen",
    "limen.cli",
    "limen.experiment",
    "limen.sfd.foundational_sfd.logreg_binary",
    "toy_sfd",
    "worker_sfd",
]

# For tests that need multiprocessing's own objects (a Pool, a Manager) with the same children.
CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(PRELOAD)


def _run(script: str, argv: list[str], env: dict[str, str], cwd: str, out: Path, err: Path):
    """The child's body: behave as ``python -c script *argv`` would, from a preloaded fork."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = ["-c", *argv]
    code = 0
    interrupted = False
    try:
        exec(compile(script, "<string>", "exec"), {"__name__": "__main__"})
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if interrupted:
        # As the interpreter does after an unhandled KeyboardInterrupt: die of SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


class Child:
    """A running child: the parts of ``subprocess.Popen`` these tests use."""

    def __init__(self, process: multiprocessing.process.BaseProcess, out: Path, err: Path):
        self._process = process
        self._out = out
        self._err = err
        weakref.finalize(self, shutil.rmtree, out.parent, ignore_errors=True)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or ``-N`` for a child ended by signal N, as with ``Popen``."""
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise TimeoutError(f"child {self.pid} still running after {timeout} s")
        return self._process.exitcode

    @property
    def stdout(self) -> str:
        return self._out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.read_text(errors="replace")


def start_script(
    script: str, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Child:
    """Start ``script`` as ``python -c script *argv`` would, in this process's environment
    (now, not when the server started) plus ``env``."""
    folder = Path(tempfile.mkdtemp(prefix="limen-child-"))
    out, err = folder / "stdout", folder / "stderr"
    environment = {**os.environ, **(env or {})}
    folder_name = str(cwd if cwd is not None else Path.cwd())
    process = CONTEXT.Process(
        target=_run, args=(script, list(argv), environment, folder_name, out, err)
    )
    process.start()
    return Child(process, out, err)


def run_script(
    script: str,
    *argv: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Child:
    """Run ``script`` to its end (killing it after ``timeout`` seconds) and return the child."""
    child = start_script(script, *argv, env=env, cwd=cwd)
    try:
        child.wait(timeout)
    except TimeoutError:
        child.kill()
        child.wait()
        raise AssertionError(f"the child ran past {timeout} s:\n{child.stderr[-2000:]}") from None
    return child


CLI = "import sys\nfrom limen.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> Child:
    """Run ``limen *args`` in a child, as ``python -m limen.cli *args`` would."""
    return run_script(CLI, *args, cwd=cwd, timeout=timeout)

"""Real services for the tests that need them: PostgreSQL and an ``mlflow server`` on it.

:func:`team_server` starts what a team runs (README: "A team tracking server"): a
PostgreSQL cluster made by ``initdb`` in a temporary folder, listening on 127.0.0.1 only,
with a database for MLflow; then ``mlflow server`` with that database as its backend
store and a folder of the temporary directory as its artifact destination, serving the
artifacts itself (clients upload and download them over HTTP, ``mlflow-artifacts:/``
URIs). On exit both are stopped and the folder is removed.

PostgreSQL is Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``),
installed by ``make postgresql`` (a prerequisite of ``make test``). When its programs are
missing, :func:`team_server` runs that target itself, the way ``make test`` would; what
cannot be installed or started raises :class:`ServiceError`, whose message names what is
missing, the fix, and the end of each service's log. PostgreSQL refuses to run as root:
as root, its programs run as the ``postgres`` system user (which the package creates).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL = (
    "Install PostgreSQL with `make postgresql` (it runs `apt-get install postgresql`: "
    "Debian's package, as root or with sudo), and the Python driver of MLflow's PostgreSQL "
    "store with `make install-dev` (pip install -c constraints.txt -e '.[dev]', which holds "
    "psycopg2-binary)."
)
#: Environment variables through which MLflow hands its state on: the server gets none.
MLFLOW_STATE = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID",
                "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")  # fmt: skip


class ServiceError(RuntimeError):
    """A service a test needs could not be installed or started (the message says why)."""


@dataclass(frozen=True)
class TeamServer:
    """A running ``mlflow server`` on PostgreSQL, and where its parts live."""

    #: The tracking URI clients use (``MLFLOW_TRACKING_URI``).
    url: str
    #: The server's backend store: ``postgresql+psycopg2://USER:PASSWORD@127.0.0.1:PORT/DB``.
    backend_uri: str
    #: The server's ``--artifacts-destination``: every artifact a client uploads lands here.
    artifacts: Path
    #: The log files of PostgreSQL and of the MLflow server.
    logs: tuple[Path, ...]

    def log_tails(self, lines: int = 40) -> str:
        """The end of each service's log, for a failure message."""
        return log_tails(self.logs, lines)


def log_tails(logs: Sequence[Path], lines: int = 40) -> str:
    parts = []
    for log in logs:
        try:
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError as err:
            text = [f"(cannot be read: {err})"]
        parts.append(f"--- {log} (last {lines} lines) ---\n" + "\n".join(text))
    return "\n".join(parts)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL programs (the newest version), else the folder of
    ``pg_ctl`` on PATH when ``initdb`` is beside it, else ``None``."""

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.name.split(".") if x.isdigit())

    found = [
        p
        for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        if (p / "initdb").is_file() and (p / "pg_ctl").is_file()
    ]
    if found:
        return found[0]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and (Path(pg_ctl).resolve().parent / "initdb").is_file():
        return Path(pg_ctl).resolve().parent
    return None


def ensure_postgres() -> Path:
    """PostgreSQL's programs, installed with ``make postgresql`` when they are missing."""
    found = postgres_bin()
    if found is not None:
        return found
    try:
        run = subprocess.run(
            ["make", "-C", str(ROOT), "postgresql"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=900,
        )
        said = (run.stdout + run.stderr).strip().splitlines()[-20:]
    except (OSError, subprocess.TimeoutExpired) as err:
        said = [repr(err)]
    found = postgres_bin()
    if found is None:
        raise ServiceError(
            "PostgreSQL's initdb and pg_ctl are not installed (looked in "
            "/usr/lib/postgresql/*/bin and on PATH), and `make postgresql` could not install "
            "them; it said:\n" + "\n".join(said) + f"\n{INSTALL}"
        )
    return found


def _as_postgres_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a PostgreSQL program as an unprivileged user, and that
    user (``None``: the current user, who is not root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError(
            "running as root, and there is no `postgres` system user to run PostgreSQL as "
            f"(it refuses to run as root; Debian's postgresql package creates the user). {INSTALL}"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServiceError(
            "running as root, and `runuser` (util-linux) is missing: PostgreSQL must run as the "
            "postgres user. Install it with `apt-get install util-linux`."
        )
    return [runuser, "-u", "postgres", "--"], user


def _run(args: list[str], what: str, logs: Sequence[Path], **kwargs: object) -> str:
    """Run a setup command; a failure raises :class:`ServiceError` with its output."""
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=180,
            **kwargs,  # type: ignore[call-overload]
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ServiceError(f"{what} failed: {err!r}\n{log_tails(logs)}") from err
    if done.returncode != 0:
        raise ServiceError(
            f"{what} failed (exit {done.returncode}): {' '.join(args)}\n"
            f"{done.stdout}{done.stderr}\n{log_tails(logs)}"
        )
    return str(done.stdout)


@contextmanager
def postgres(folder: Path, database: str = "mlflow", user: str = "mlflow") -> Iterator[str]:
    """A PostgreSQL cluster in ``folder`` (created here) on a free port of 127.0.0.1, with the
    database ``database`` owned by ``user`` (password authentication); yields its
    SQLAlchemy URI. Stopped on exit; ``folder`` is left for the caller to remove."""
    bin_dir = ensure_postgres()
    prefix, owner = _as_postgres_user()
    folder.mkdir(parents=True)
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, log, pwfile = folder / "data", folder / "postgres.log", folder / "pwfile"
    password = secrets.token_hex(12)
    pwfile.write_text(password + "\n", encoding="utf-8")
    if owner is not None:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    pwfile.chmod(0o600)
    logs = (log,)
    # Tests only: no fsync, so that a cluster starts and MLflow's tables are made in seconds.
    _run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
         "-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
        "initdb", logs, cwd=folder,
    )  # fmt: skip
    pwfile.unlink()
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{folder}' "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:  # a start that timed out may still come up: stopped all the same
        _run([*pg_ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
             "starting PostgreSQL (pg_ctl start)", logs, cwd=folder)  # fmt: skip
        env = {**os.environ, "PGPASSWORD": password}
        _run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
            "createdb", logs, env=env, cwd=folder,
        )  # fmt: skip
        yield f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "-t", "60", "stop"], cwd=folder,
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip


# ---------------------------------------------------------------- mlflow server


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def mlflow_server(
    backend_uri: str, artifacts: Path, log: Path, logs: Sequence[Path], wait: float = 240.0
) -> Iterator[str]:
    """``mlflow server`` on ``backend_uri``, serving the artifacts of ``artifacts`` on a free
    port of 127.0.0.1, with one worker and, as the README runs it, without MLflow's job
    runners (seven more processes, which churn never uses); yields its URL once ``/health``
    answers."""
    try:
        import psycopg2  # noqa: F401  (MLflow's PostgreSQL store needs it)
    except ImportError as err:
        raise ServiceError(f"psycopg2 cannot be imported ({err}). {INSTALL}") from err
    exe = Path(sys.executable).with_name("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_STATE}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    artifacts.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(exe), "server", "--backend-store-uri", backend_uri,
             "--artifacts-destination", str(artifacts), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=artifacts.parent, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + wait
        while not _health(url):
            if _exited(server):
                raise ServiceError(
                    f"mlflow server exited before answering {url}/health.\n{log_tails(logs)}"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"mlflow server did not answer {url}/health within {wait:.0f} s.\n"
                    f"{log_tails(logs)}"
                )
            time.sleep(0.5)
        yield url
    finally:
        _stop(server)


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether ``process`` has exited, without reaping it: while it is not reaped, its
    process group (the uvicorn worker it started) keeps its id, so signalling the group
    can reach no other process."""
    if process.returncode is not None:
        return True
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _stop(process: subprocess.Popen[bytes], wait: float = 30.0) -> None:
    """Stop a server started in its own session and the workers it started (its group):
    SIGTERM, then SIGKILL to what is left after ``wait`` seconds; then reap it."""
    if process.returncode is None:  # not reaped yet: the group id is still ours
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while not _exited(process) and time.monotonic() < deadline:
            time.sleep(0.1)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a worker that outlived its server
    process.wait(timeout=wait)


@contextmanager
def team_server() -> Iterator[TeamServer]:
    """PostgreSQL and ``mlflow server`` on it, in a new temporary folder; all removed on exit.

    The folder is made under the system's temporary directory (not pytest's, which only
    root may enter) so that the postgres user can reach its data directory.
    """
    with ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="churn-team-server-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        root.chmod(0o755)
        pg_dir, artifacts, server_log = root / "postgres", root / "artifacts", root / "mlflow.log"
        logs = (pg_dir / "postgres.log", server_log)
        backend = stack.enter_context(postgres(pg_dir))
        url = stack.enter_context(mlflow_server(backend, artifacts, server_log, logs))
        yield TeamServer(url=url, backend_uri=backend, artifacts=artifacts, logs=logs)

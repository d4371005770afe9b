"""A throwaway PostgreSQL server for the tests and the benchmark: a fresh cluster in a temporary directory.

``PostgresServer`` runs ``initdb`` and ``pg_ctl`` from an installed PostgreSQL (Debian's
``postgresql`` package puts them in ``/usr/lib/postgresql/<major>/bin``), listens on a free
port on 127.0.0.1 only, and on ``stop()`` shuts the server down and deletes the directory.

PostgreSQL refuses to run as root, so when the tests or the benchmark run as root every server
command runs as the ``postgres`` system user; otherwise it runs as the current user.

The superuser's password is random. It reaches the server in a password file that
``initdb`` reads and that is deleted right after, and it reaches ``psql`` in a pgpass file
inside the temporary directory: it is in no command line and no environment variable.

A server is never left behind: ``stop()`` runs on leaving the ``with`` block, at interpreter
exit for any server still running, and, if the process that started it dies without running
either (SIGKILL, a crash), a small watchdog process started beside the server notices that its
pipe from that process closed, shuts the server down and deletes the directory.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "PostgresNotFoundError",
    "PostgresServer",
    "PostgresServerError",
    "find_bin_dir",
    "process_alive",
    "start_watchdog",
]

BIN_ENV = "TRIAGE_TEST_PG_BIN"
HOST = "127.0.0.1"
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = (
    "install the Debian package `postgresql` (apt-get install postgresql; .ci/run does this when it is missing)"
    f" or set {BIN_ENV} to the directory that holds initdb, pg_ctl, postgres and psql"
)
_REQUIRED = ("initdb", "pg_ctl", "postgres", "psql")
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The longest path a Unix socket address holds on Linux, less PostgreSQL's "/.s.PGSQL.NNNNN".
_MAX_SOCKET_DIR = 107 - len("/.s.PGSQL.65535")

# Runs beside each server in its own session (a Ctrl-C to the starting process's group does not
# reach it). It blocks reading its stdin, a pipe whose only writer is the starting process; when
# that closes (a clean stop, or that process died), it stops whatever postmaster still
# owns the data directory and deletes the directory. A clean stop leaves it nothing to do.
_WATCHDOG = """
import os, shutil, signal, sys, time
data, top = sys.argv[1], sys.argv[2]
sys.stdin.buffer.read()
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
def postmaster():
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            pid = int(f.readline())
        if alive(pid) and os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) == os.path.realpath(data):
            return pid
    except (OSError, ValueError):
        pass
    return None
for sig in (signal.SIGQUIT, signal.SIGKILL):
    pid = postmaster()
    if pid is None:
        break
    try:
        os.kill(pid, sig)
    except OSError:
        break
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)
shutil.rmtree(top, ignore_errors=True)
"""


class PostgresServerError(RuntimeError):
    """The server could not be set up, started, queried or stopped."""


class PostgresNotFoundError(PostgresServerError):
    """No PostgreSQL server binaries were found."""


def _has_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in _REQUIRED)


def _major_key(directory: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name)) or (0,)


def find_bin_dir() -> Path:
    """The directory holding initdb, pg_ctl, postgres and psql.

    In order: ``$TRIAGE_TEST_PG_BIN`` (and nothing else when it is set), the newest
    ``/usr/lib/postgresql/<major>/bin``, ``pg_config --bindir``, and the directory of an
    ``initdb`` on PATH.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        directory = Path(override)
        if _has_binaries(directory):
            return directory
        raise PostgresNotFoundError(f"{BIN_ENV}={override} does not hold all of {', '.join(_REQUIRED)}; {INSTALL_HINT}")
    candidates = sorted((Path(p) for p in glob.glob(DEBIAN_BIN_GLOB)), key=_major_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if _has_binaries(directory):
            return directory
    raise PostgresNotFoundError(f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: {INSTALL_HINT}")


def start_watchdog(data_dir: Path, directory: Path) -> subprocess.Popen[bytes]:
    """Start the watchdog for a server in ``data_dir``; closing its stdin makes it clean up ``directory``."""
    return subprocess.Popen(
        [sys.executable, "-I", "-c", _WATCHDOG, str(data_dir), str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie is not (and is reaped if it is our child)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _reachable_by_others(directory: Path) -> bool:
    """Whether another user can reach files below ``directory`` (every ancestor is o+x)."""
    for part in (directory, *directory.parents):
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, on 127.0.0.1, for as long as it is used.

    Use it as a context manager (``with PostgresServer() as server: ...``) or call
    ``start()`` and ``stop()``. ``url(database)`` is a ``postgresql://`` URL with the
    superuser's name and password; ``create_database``/``drop_database`` manage databases.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        superuser: str = "triage",
        max_connections: int = 200,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
        if not _has_binaries(self.bin_dir):
            raise PostgresNotFoundError(f"{self.bin_dir} does not hold all of {', '.join(_REQUIRED)}; {INSTALL_HINT}")
        self.superuser = superuser
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.host = HOST
        self._password = secrets.token_urlsafe(24)
        self._port: int | None = None
        self._pid: int | None = None
        self._directory: Path | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresServerError(
                    "running as root, and PostgreSQL refuses to: the `postgres` system user is missing; " + INSTALL_HINT
                ) from None

    def __repr__(self) -> str:
        state = f"port {self._port}" if self.running else "stopped"
        return f"<PostgresServer {self.bin_dir} {state}>"

    # -- what callers use -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._directory is not None and self._pid is not None

    @property
    def port(self) -> int:
        if self._port is None or not self.running:
            raise PostgresServerError("the server is not running")
        return self._port

    @property
    def password(self) -> str:
        return self._password

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        if self._pid is None:
            raise PostgresServerError("the server is not running")
        return self._pid

    @property
    def directory(self) -> Path:
        """The temporary directory: the data directory, the socket directory and the log."""
        if self._directory is None:
            raise PostgresServerError("the server is not running")
        return self._directory

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @functools.cached_property
    def major(self) -> int:
        """The major version of the server binaries (15 for PostgreSQL 15.x)."""
        out = self._run([str(self.bin_dir / "postgres"), "--version"], timeout=10, as_server=False).stdout
        found = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
        if found is None:
            raise PostgresServerError(f"cannot read the version from `postgres --version`: {out.strip()!r}")
        return int(found.group(1))

    def url(self, database: str = "postgres") -> str:
        """``postgresql://USER:PASSWORD@127.0.0.1:PORT/DATABASE``."""
        return f"postgresql://{self.superuser}:{self._password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        """Create an empty database ``name`` (lower-case letters, digits and ``_``)."""
        self._check_name(name)
        self.psql('CREATE DATABASE :"name"', variables={"name": name})

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, terminating any connections to it first."""
        self._check_name(name)
        self.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = :'name' AND pid <> pg_backend_pid();\n"
            'DROP DATABASE IF EXISTS :"name" WITH (FORCE);',
            variables={"name": name},
        )

    def psql(self, sql: str, *, database: str = "postgres", variables: Mapping[str, str] | None = None) -> str:
        """Run ``sql`` (read from stdin, so ``:'var'``/``:"var"`` interpolate) and return psql's output."""
        args = [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"]
        args += ["-h", self.host, "-p", str(self.port), "-U", self.superuser, "-d", database]
        for key, value in (variables or {}).items():
            args += ["-v", f"{key}={value}"]
        env = {"PGPASSFILE": str(self.directory / "pgpass"), "PGCONNECT_TIMEOUT": "10"}
        result = self._run(args, stdin=sql, env=env, timeout=60, as_server=False, check=False)
        if result.returncode != 0:
            raise PostgresServerError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Create the cluster and start the server; returns once it accepts connections."""
        if self._directory is not None:
            raise PostgresServerError("the server is already started")
        self._directory = self._make_directory()
        _LIVE.add(self)
        try:
            self._watchdog = start_watchdog(self.data_dir, self.directory)
            self._initdb()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and delete its directory."""
        directory = self._directory
        if directory is None:
            return
        try:
            if self._postmaster_pid() is not None:
                self._pg_ctl_stop()
        finally:
            self._kill_postmaster()
            shutil.rmtree(directory, ignore_errors=True)
            self._directory = None
            self._pid = None
            _LIVE.discard(self)
            self._stop_watchdog()

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _check_name(name: str) -> None:
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")

    def _make_directory(self) -> Path:
        base = Path(tempfile.gettempdir())
        if len(str(base)) + 40 > _MAX_SOCKET_DIR or (self._run_as is not None and not _reachable_by_others(base)):
            base = Path("/tmp")
        directory = Path(tempfile.mkdtemp(prefix="triage-pg-", dir=base))
        (directory / "socket").mkdir()
        if self._run_as is not None:
            for path in (directory, directory / "socket"):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        directory.chmod(0o700)
        # The client side (psql, run as the current user) reads the password from here.
        self._write_private(directory / "pgpass", f"{self.host}:*:*:{self.superuser}:{self._password}\n", own=False)
        return directory

    def _write_private(self, path: Path, text: str, *, own: bool) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if own and self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        stdin: IO[bytes] | None = watchdog.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            watchdog.wait(timeout=15)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait(timeout=5)

    def _initdb(self) -> None:
        pwfile = self.directory / "pwfile"
        self._write_private(pwfile, self._password + "\n", own=True)
        try:
            args = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser, f"--pwfile={pwfile}"]
            args += ["-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
            result = self._run(args, timeout=max(self.start_timeout, 60.0), check=False)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        settings = {
            "listen_addresses": f"'{self.host}'",
            "unix_socket_directories": f"'{self.directory / 'socket'}'",
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "password_encryption": "'scram-sha-256'",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "logging_collector": "off",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Throwaway server (bench/pgserver.py)\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _start_server(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        for _attempt in range(3):
            self._port = _free_port()
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            remaining = max(deadline - time.monotonic(), 5.0)
            args = [str(self.bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_path)]
            args += ["-w", "-t", str(int(remaining)), "-s", "-o", f"-p {self._port}"]
            try:
                result = self._run(args, timeout=remaining + 10, check=False)
            except subprocess.TimeoutExpired:
                raise self._failure(f"pg_ctl start did not return within {remaining + 10:.0f} s") from None
            if result.returncode == 0:
                break
            # Another process took the port between picking it and the server binding it.
            if "Address already in use" in self._log_since(log_start) and self._postmaster_pid() is None:
                continue
            raise self._failure(f"pg_ctl start failed ({result.returncode}): {result.stderr.strip()}")
        else:
            raise self._failure("no free port after 3 attempts")
        self._pid = self._postmaster_pid()
        if self._pid is None:
            raise self._failure("the server started but wrote no postmaster.pid")
        # pg_ctl -w waits for the socket; make sure password login over TCP works as well.
        try:
            self.psql("SELECT 1")
        except PostgresServerError as exc:
            raise self._failure(str(exc)) from None

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _failure(self, what: str) -> PostgresServerError:
        return PostgresServerError(f"PostgreSQL server in {self._directory}: {what}\n{_tail(self.log_path)}")

    def _postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid, if that process is alive and serves this data directory."""
        if self._directory is None:
            return None
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            if not process_alive(pid):
                return None
            if os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) != os.path.realpath(self.data_dir):
                return None
        except (OSError, ValueError):
            return None
        return pid

    def _pg_ctl_stop(self) -> None:
        pg_ctl = str(self.bin_dir / "pg_ctl")
        for mode, timeout in (("fast", self.stop_timeout), ("immediate", 5.0)):
            args = [pg_ctl, "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout)), "-s"]
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self._run(args, timeout=timeout + 5, check=False).returncode == 0:
                    return
            if self._postmaster_pid() is None:
                return

    def _kill_postmaster(self) -> None:
        """SIGKILL the postmaster if it is still alive; wait (bounded) for it to go."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)

    def _run(
        self,
        args: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        as_server: bool = True,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with a clean environment (no PG* variables), as ``postgres`` if root."""
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        full_env.update(env or {})
        user = self._run_as if as_server else None
        if user is not None:
            full_env.update({"HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name})
        elif "HOME" in os.environ:
            full_env["HOME"] = os.environ["HOME"]
        cwd = str(self._directory) if self._directory is not None else None
        result = subprocess.run(
            list(args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            user=user.pw_uid if user is not None else None,
            group=user.pw_gid if user is not None else None,
            extra_groups=[] if user is not None else None,
            check=False,
        )
        if check and result.returncode != 0:
            raise PostgresServerError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()}")
        return result


_LIVE: set[PostgresServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()

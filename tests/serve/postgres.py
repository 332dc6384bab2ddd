"""A throw-away PostgreSQL server for the platform's tests (Debian's ``postgresql`` package).

``PostgresServer.start`` runs ``initdb`` and ``pg_ctl start`` in a new temporary folder, listening
on a Unix socket only (no TCP), with fsync off; each test gets a database of its own
(``create_database``), dropped afterwards. PostgreSQL refuses to run as root, so under root the
server runs as ``nobody``.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "vcfnet"


def find_bin_dir() -> Path | None:
    """The folder of ``pg_ctl`` and ``initdb``: on PATH, else Debian's /usr/lib/postgresql/*."""
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    """A port number for the socket's name (``.s.PGSQL.<port>``); nothing listens on TCP."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresError(RuntimeError):
    pass


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        as_root = os.geteuid() == 0
        # under root the server runs as nobody, who must reach the folder: /tmp, not $TMPDIR
        self.root = Path(tempfile.mkdtemp(prefix="vcfnet-pg-", dir="/tmp" if as_root else None))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        if as_root:  # postgres refuses to run as root
            self._as_user = ["runuser", "-u", "nobody", "--"]
            shutil.chown(self.root, "nobody")
        self.socket_dir.mkdir()
        if self._as_user:
            shutil.chown(self.socket_dir, "nobody")

    def _run(self, *args: str) -> None:
        command = [*self._as_user, str(self.bin_dir / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise PostgresError(
                f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}{log[-2000:]}"
            )

    def start(self) -> PostgresServer:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-k {self.socket_dir} -p {self.port} -c listen_addresses='' "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """A SQLAlchemy URL (psycopg 3) of ``database`` over the Unix socket."""
        return f"postgresql+psycopg://{USER}@/{database}?host={self.socket_dir}&port={self.port}"

    def _admin(self):
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=USER,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"vcfnet_test_{next(self._names)}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.split("@/", 1)[1].split("?", 1)[0]
        with self._admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

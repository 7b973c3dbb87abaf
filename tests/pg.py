"""A throwaway PostgreSQL server for tests: its own cluster in a temp dir, a Unix socket only (no TCP
port), trust auth for one role, a fresh database per test. Stopped (immediately) at the end.

PostgreSQL refuses to run as root; under root the server runs as the ``postgres`` system user that
Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

ROLE = "kataribe"
PORT = 5432  # only names the socket file: listen_addresses is empty, so no TCP port is opened


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    return versions[-1] if versions else None


def _version_key(path: str) -> int:
    part = Path(path).parents[1].name
    return int(part) if part.isdigit() else 0


class PostgresServer:
    def __init__(self, root: Path, initdb: str, pg_ctl: str) -> None:
        self.root = root
        self.data = root / "data"
        self.pg_ctl = pg_ctl
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._run([initdb, "-D", str(self.data), "-A", "trust", "-U", ROLE, "-E", "UTF8", "--locale=C.UTF-8"])
        options = f"-k {root} -p {PORT} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        self._run([pg_ctl, "-D", str(self.data), "-l", str(root / "log"), "-o", options, "-w", "start"])

    @classmethod
    def start(cls) -> PostgresServer | None:
        """A running server, or None where PostgreSQL is not installed."""
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            return None
        root = Path(tempfile.mkdtemp(prefix="kataribe-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        return cls(root, initdb, pg_ctl)

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stdout}{done.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{ROLE}@/{database}?host={self.root}&port={PORT}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=str(self.root), port=PORT, user=ROLE, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

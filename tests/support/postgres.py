"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests, from Debian's postgresql package.

The cluster lives in a fresh folder under the system temporary directory, listens only
on a free loopback port, allows only local connections without a password, and is
deleted on stop. PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` system user, which then owns the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.support.network import free_port

POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SERVICE_USER = "postgres"


def postgres_bin_dir() -> Path | None:
    """Return the newest installed PostgreSQL bin folder that has initdb, or None."""
    for folder in POSTGRES_BIN_DIRS:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def missing_reason() -> str | None:
    """Return why PostgreSQL tests cannot run here, or None when they can."""
    if postgres_bin_dir() is None:
        return "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as"
    return None


class PostgresServer:
    """initdb, start and stop one cluster; use as a context manager. ``uri(database)`` gives a SQLAlchemy URI."""

    def __init__(self, user: str = "mlship") -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError(missing_reason())
        self.bin_dir = bin_dir
        self.user = user
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mlship-postgres-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.run_as_service_user = os.geteuid() == 0

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SERVICE_USER, "--"] if self.run_as_service_user else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            log_tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}\n{log_tail}")
        return result

    def start(self) -> PostgresServer:
        if self.run_as_service_user:
            entry = pwd.getpwnam(SERVICE_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URI."""
        self._run(str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.uri(name)

    def uri(self, database: str) -> str:
        # psycopg2, the driver that the registry image installs (psycopg2-binary).
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
            except RuntimeError:
                time.sleep(1)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

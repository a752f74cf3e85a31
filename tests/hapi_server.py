"""A real HAPI FHIR JPA server for integration tests, built from Maven Central and run in a JVM.

The launcher in ``tests/hapi/`` (a ``pom.xml`` and three small Java classes) wires HAPI's own
library modules — JPA storage on an in-memory H2 database (or on a PostgreSQL database given to
``hapi_server``, as HAPI runs in production), rest-hook subscriptions, Bulk ``$export`` — into a
Jetty servlet on 127.0.0.1, for FHIR R4 or R5 (one launcher, one argument).

The build is cached: its output goes to ``~/.cache/fhir-cm/hapi/<hash of the launcher's files>``
(``FHIR_CM_HAPI_CACHE`` overrides the root), so a fresh clone on a machine that has built it once
starts at once, and a changed launcher is rebuilt. The first build on a new machine downloads
HAPI's dependencies (~350 MB) into Maven's own repository (~1–2 minutes); each start takes 15–45 s
on two cores, so a test session (each of its processes) starts each release once. The server stops when the test process
closes its standard input, so a killed test run never leaves a JVM behind.

Without Java 17+ or Maven the tests that need HAPI are skipped with a message saying so; under
``CI`` that is a failure, so a broken set-up cannot hide behind a skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.server_process import run_server
from tests.servers import RunningServer

__all__ = ["hapi_server", "require_hapi_toolchain"]

LAUNCHER = Path(__file__).resolve().parent / "hapi"
MAIN_CLASS = "org.fhircm.hapi.HapiTestServer"
BUILD_TIMEOUT = 900.0  # a first build on a new machine downloads HAPI's dependencies
STARTUP_TIMEOUT = 240.0
WHAT = "the HAPI FHIR test server"
JVM_OPTIONS = ("-Xmx1g", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")


def _toolchain_problem() -> str | None:
    """Why HAPI cannot be built here, or None when Java 17+ and Maven are both present."""
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        missing = " and ".join(name for name, path in (("Java", java), ("Maven", mvn)) if path is None)
        return f"{missing} not found on PATH: the HAPI FHIR server cannot be built (needs Java 17+ and Maven)"
    version = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    major = _java_major(version)
    if major is not None and major < 17:
        return f"Java {major} found; the HAPI FHIR server needs Java 17 or newer"
    return None


def _java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output (``"17.0.15"`` → 17, ``"1.8.0"`` → 8)."""
    for token in version_output.replace('"', " ").split():
        head = token.split(".")[0]
        if head.isdigit() and "." in token:
            number = int(head)
            return int(token.split(".")[1]) if number == 1 else number
    return None


def require_hapi_toolchain() -> None:
    """Skip the test (fail it under ``CI``) when Java or Maven is missing."""
    problem = _toolchain_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(problem)


def _database_options(database: str | None) -> list[str]:
    """The JVM's system properties that point HAPI at ``database`` (none: H2 in memory)."""
    if database is None:
        return []
    url = make_url(database)
    jdbc = f"jdbc:postgresql://{url.host or '127.0.0.1'}:{url.port or 5432}/{url.database}"
    options = [f"-Dfhircm.hapi.jdbc.url={jdbc}", f"-Dfhircm.hapi.jdbc.user={url.username or 'postgres'}"]
    if url.password:
        options.append(f"-Dfhircm.hapi.jdbc.password={url.password}")
    return options


def _launcher_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in LAUNCHER.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(LAUNCHER)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_root() -> Path:
    return Path(os.environ.get("FHIR_CM_HAPI_CACHE", Path.home() / ".cache" / "fhir-cm" / "hapi"))


def build_classpath() -> str:
    """Build the launcher if this version of it has not been built yet; return its Java classpath.

    Builds run under a file lock, so concurrent test processes build once and the others wait.
    """
    build_dir = _cache_root() / _launcher_digest()
    done = build_dir / "classpath.txt"
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _usable(done):
            _build(build_dir)
    return f"{build_dir / 'classes'}{os.pathsep}{done.read_text().strip()}"


def _usable(classpath_file: Path) -> bool:
    """A finished build whose dependency jars are all still in Maven's repository."""
    if not classpath_file.exists():
        return False
    return all(Path(jar).exists() for jar in classpath_file.read_text().strip().split(os.pathsep) if jar)


def _build(build_dir: Path) -> None:
    work = build_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(LAUNCHER, work, ignore=shutil.ignore_patterns("target"))
    command = ["mvn", "-B", "-q", "-DskipTests", "package"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"building the HAPI FHIR test server failed (mvn exit {result.returncode}):\n{tail}")
    shutil.rmtree(build_dir / "classes", ignore_errors=True)
    shutil.copytree(work / "target" / "classes", build_dir / "classes")
    # Written last: its presence marks a complete build.
    shutil.copy(work / "target" / "classpath.txt", build_dir / "classpath.txt")
    shutil.rmtree(work, ignore_errors=True)


@contextmanager
def hapi_server(release: str = "R4", *, database: str | None = None) -> Iterator[RunningServer]:
    """Run a HAPI FHIR JPA server (``R4`` or ``R5``) on a free port of 127.0.0.1 for the block.

    ``database``: a PostgreSQL database (a SQLAlchemy URL, e.g. from ``tests.pg.temporary_database``)
    to store in, as HAPI is run in production; by default an in-memory H2 database.
    """
    require_hapi_toolchain()
    classpath = build_classpath()
    command = ["java", *JVM_OPTIONS, *_database_options(database), "-cp", classpath, MAIN_CLASS, release, "0"]
    with run_server(command, what=WHAT, timeout=STARTUP_TIMEOUT) as (base_url, pid):
        root = base_url.rsplit("/fhir", 1)[0]
        yield RunningServer(base_url=base_url, root_url=root, settings={"release": release, "pid": pid})

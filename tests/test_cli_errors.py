"""Whatever fhir-cm refuses before a command's work starts (its settings, its store) is one line on
stderr and a non-zero exit, through the real entry point: never a traceback, never a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import RunningServer


def fhir_cm(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_CM_")}
    return subprocess.run(
        [sys.executable, "-c", "from fhir_cm.cli import main; main()", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["check"], {"FHIR_CM_FHIR_VERSION": "R6"}, "FHIR_CM_FHIR_VERSION: Input should be 'auto', 'R4' or 'R5'"),
        (["check"], {"FHIR_CM_HORIZON_YEARS": "-1"}, "FHIR_CM_HORIZON_YEARS: Input should be greater than"),
        (["check"], {"FHIR_CM_PORT": "70000"}, "FHIR_CM_PORT: Input should be less than or equal to 65535"),
        (["check"], {"FHIR_CM_TIMEOUT": "0"}, "FHIR_CM_TIMEOUT: Input should be greater than 0"),
        (["check"], {"FHIR_CM_CASELOAD_LIMIT": "-1"}, "FHIR_CM_CASELOAD_LIMIT: Input should be greater than or equal"),
        (["check"], {"FHIR_CM_PUBLIC_URL": "cm.example.org"}, "FHIR_CM_PUBLIC_URL: must be an http(s) URL"),
        (["check"], {"FHIR_CM_HOST": ""}, "FHIR_CM_HOST: is empty"),  # "" would bind every interface
        (["check"], {"FHIR_CM_DATABASE_URL": ""}, "FHIR_CM_DATABASE_URL: is empty"),
        (["check"], {"FHIR_CM_IDENTIFIER_SYSTEM": " "}, "FHIR_CM_IDENTIFIER_SYSTEM: is empty"),
        (
            ["capabilities"],
            {"FHIR_CM_FHIR_BASE": "https://x.example/fhir", "FHIR_CM_AUTH": "bearer", "FHIR_CM_TOKEN": ""},
            "auth=bearer needs FHIR_CM_TOKEN",
        ),  # an empty token is none, not 'Bearer ' sent to the server
        (["check"], {"FHIR_CM_DATABASE_URL": "sqlite://"}, "FHIR_CM_DATABASE_URL names no file"),
        (["check"], {"FHIR_CM_DATABASE_URL": "sqlite:///:memory:"}, "FHIR_CM_DATABASE_URL names no file"),
        (
            ["check"],
            {"FHIR_CM_DATABASE_URL": "postgresql+psycopg2://someone:s3cret-pw@127.0.0.1:9/db"},
            "unsupported database driver 'psycopg2'",
        ),
        # The forms people write in their first hour: a path, two slashes, libpq's `postgres://`.
        (["check"], {"FHIR_CM_DATABASE_URL": "fhir-cm.db"}, "use sqlite:///FILE"),
        (["check"], {"FHIR_CM_DATABASE_URL": "sqlite://fhir-cm.db"}, "names a file after three slashes"),
        (
            ["check"],
            {"FHIR_CM_DATABASE_URL": "postgres://someone:s3cret-pw@127.0.0.1:9/db"},
            'server at "127.0.0.1", port 9 failed: Connection refused',
        ),
        (
            ["check"],
            {"FHIR_CM_DATABASE_URL": "postgresql://someone:s3cret-pw@127.0.0.1:9/db"},
            "cannot open the store postgresql+psycopg://someone:***@127.0.0.1:9/db: connection to server",
        ),
    ],
)
def test_a_setting_refused_is_one_line_naming_it(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", **env}
    done = fhir_cm(*args, env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("fhir-cm: error: ") and done.stderr.count("\n") == 1
    assert says in done.stderr and "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr


def test_a_sqlite_file_in_a_folder_that_does_not_exist_is_named_with_the_reason(tmp_path: Path) -> None:
    done = fhir_cm("check", env={"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path}/no-such-folder/store.db"}, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "no-such-folder/store.db: unable to open database file" in done.stderr


def test_a_database_url_ending_in_a_space_opens_the_store_it_names(tmp_path: Path) -> None:
    """An env file's `FHIR_CM_DATABASE_URL=sqlite:///fhir-cm.db ` is the store beside it, not a new one."""
    for url in ("sqlite:///fhir-cm.db", "sqlite:///fhir-cm.db \r\n"):
        done = fhir_cm("generate", "--cases", "1", "--out", "case.jsonl", env={}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        done = fhir_cm("import", "case.jsonl", env={"FHIR_CM_DATABASE_URL": url}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("fhir-cm.db*")) == ["fhir-cm.db"]


def test_a_push_to_a_server_that_cannot_be_reached_is_one_to_run_again(tmp_path: Path) -> None:
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    cases = fhir_cm("generate", "--cases", "1", env=env, cwd=tmp_path)
    (tmp_path / "cases.jsonl").write_text(cases.stdout)

    done = fhir_cm("push", "cases.jsonl", "--fhir-base", "http://127.0.0.1:9/fhir", env=env, cwd=tmp_path)

    assert done.returncode == 75, done.stderr  # EX_TEMPFAIL: not a failure for good
    assert "network error" in done.stderr and "run it again later" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["pull", "identify"])
def test_a_since_that_is_no_instant_names_the_option_before_any_request(tmp_path: Path, command: str) -> None:
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}

    done = fhir_cm(command, "--since", "2024-13-01", "--fhir-base", "http://127.0.0.1:9/fhir", env=env, cwd=tmp_path)

    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--since': '2024-13-01' is not an instant" in done.stderr
    assert "network error" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["pull"], "GET metadata → network error"),
        (["identify"], "GET $export → network error"),  # not "the server did not start the export"
        (["capabilities"], "GET metadata → network error"),
    ],
)
def test_a_server_that_cannot_be_reached_is_one_to_run_again(tmp_path: Path, command: list[str], says: str) -> None:
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}

    done = fhir_cm(*command, "--fhir-base", "http://127.0.0.1:9/fhir", env=env, cwd=tmp_path)

    assert done.returncode == 75, done.stderr
    last = done.stderr.splitlines()[-1]
    # What happened, with which host: a refused port, not only the error's class.
    assert last == (
        f"fhir-cm: error: {says} (ConnectError): connection refused by 127.0.0.1:9 (nothing listening there?)"
    ), done.stderr
    assert "Traceback" not in done.stderr


def test_transitions_of_a_case_the_store_does_not_hold_is_an_error(tmp_path: Path) -> None:
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}

    done = fhir_cm("transitions", "--case", "no-such-case", env=env, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (1, "fhir-cm: error: no case no-such-case\n")


@pytest.mark.parametrize(("content", "named"), [("", "cases.jsonl"), ("\n\n", "cases.jsonl"), ("[]", "cases.jsonl")])
def test_a_file_without_cases_is_refused(tmp_path: Path, content: str, named: str) -> None:
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    (tmp_path / "cases.jsonl").write_text(content)

    for command in (["map", "cases.jsonl"], ["push", "cases.jsonl", "--fhir-base", "http://127.0.0.1:9/fhir"]):
        done = fhir_cm(*command, env=env, cwd=tmp_path)
        assert (done.returncode, done.stderr) == (1, f"fhir-cm: error: {named}: no cases in it\n"), command
        assert done.stdout == ""


@pytest.mark.parametrize(
    ("command", "key", "says"),
    [
        (["worker", "--once"], None, "FHIR_CM_PRIVATE_KEY_FILE ({key}) cannot be read: No such file or directory"),
        (["serve"], "rsa", "FHIR_CM_PRIVATE_KEY_FILE ({key}): the private key is an RSA key: ES384 signs with"),
    ],
    ids=["worker-missing-key", "serve-rsa-key-for-es384"],
)
def test_a_smart_key_every_sync_would_fail_with_is_refused_when_the_command_starts(
    tmp_path: Path, command: list[str], key: str | None, says: str
) -> None:
    # The worker stopped with a traceback; serve started, and the first sync a supervisor asked for failed.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key_file = tmp_path / "backend.pem"
    if key == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    env = {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "FHIR_CM_FHIR_BASE": "https://ehr.example.org/fhir",
        "FHIR_CM_AUTH": "smart",
        "FHIR_CM_CLIENT_ID": "fhir-cm",
        "FHIR_CM_PRIVATE_KEY_FILE": str(key_file),
        "FHIR_CM_PRIVATE_KEY_ALG": "ES384",
    }

    done = fhir_cm(*command, env=env, cwd=tmp_path)

    assert done.returncode in (1, 2), done.stderr
    assert done.stderr.startswith("fhir-cm: error: ") and "Traceback" not in done.stderr
    assert says.format(key=key_file) in done.stderr


@pytest.mark.parametrize("command", [["capabilities"], ["pull"], ["identify", "--search"]])
def test_a_base_without_the_servers_fhir_path_is_named_as_such(
    tmp_path: Path, sekmet: RunningServer, command: list[str]
) -> None:
    """The server's root (no /fhir): its web server's bare 404 says what to check, not only the status."""
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}

    done = fhir_cm(*command, "--fhir-base", sekmet.root_url, env=env, cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(
        f"→ 404 ResourceNotFound; no FHIR server answers at {sekmet.root_url}: "
        "is it the server's FHIR base (often ending in /fhir)?\n"
    )


@pytest.mark.parametrize("command", [["transitions", "--json"], ["transitions"], ["generate", "--cases", "400"]])
def test_output_cut_short_by_its_reader_ends_quietly_with_success(tmp_path: Path, command: list[str]) -> None:
    """`fhir-cm transitions | head -1` under `set -o pipefail`: the reader had what it wanted, so the
    command ends 0 with nothing on stderr, as generate, map and export did already."""
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    assert fhir_cm("generate", "--cases", "60", "--out", "cases.jsonl", env=env, cwd=tmp_path).returncode == 0
    imported = fhir_cm("import", "cases.jsonl", env=env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    script = (
        f"set -o pipefail; {sys.executable} -c 'from fhir_cm.cli import main; main()' {' '.join(command)} | head -1"
    )

    done = subprocess.run(
        ["bash", "-c", script], env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.count("\n") == 1


@pytest.mark.parametrize(
    "command", [["capabilities"], ["push", "--all"], ["pull"], ["identify", "--search"], ["subscriptions"]]
)
def test_no_fhir_base_is_a_usage_error_of_every_command_that_needs_one(tmp_path: Path, command: list[str]) -> None:
    """No --fhir-base and no FHIR_CM_FHIR_BASE is how the command was called, not a server's failure:
    click's usage-error exit (2), the same for every command, so a script can tell the two apart."""
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}

    done = fhir_cm(*command, env=env, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (
        2,
        "fhir-cm: error: no FHIR base URL: pass --fhir-base or set FHIR_CM_FHIR_BASE\n",
    )

"""Population screening from NDJSON files: patients/s and peak RSS as the population grows.

    python benchmarks/bench_screening.py [--patients 10000,30000,100000] [--store sqlite|postgresql]

For each N, NDJSON files like a Bulk export's (Patient, Encounter, Condition, Observation; the
thirteen profiles of the tests, about 2.3 resources per patient) are written to a temporary
directory, then ``fhir-cm identify --ndjson`` screens them in a fresh process on a fresh store —
reduce each resource to its fact, store the facts in batches, rank everyone in slices — and the
process's peak resident memory (``ru_maxrss``) is read when it ends. Printed per N: resources,
candidates, wall time, patients/s, peak RSS, and the RSS ratio to the smallest N (goal: flat — 1.0 —
since memory holds one batch of facts and one slice of patients, whatever N). Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.identify.population import population  # noqa: E402
from tests.pg import temporary_database  # noqa: E402

SERVER = "https://ehr.example.org/fhir"
_RUNNER = """
import resource, sys
from fhir_cm.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def write_files(directory: Path, patients: int) -> int:
    per_profile = max(1, patients // 13)
    handles: dict[str, object] = {}
    written = 0
    try:
        for _, _, resources in population("bench", per_profile, dt.date.today()):
            for r in resources:
                handle = handles.get(r["resourceType"])
                if handle is None:
                    handle = handles[r["resourceType"]] = (directory / f"{r['resourceType']}.ndjson").open("wb")
                handle.write(orjson.dumps(r) + b"\n")  # type: ignore[attr-defined]
                written += 1
    finally:
        for handle in handles.values():
            handle.close()  # type: ignore[attr-defined]
    return written


def screen(directory: Path, database_url: str) -> tuple[dict, float, int]:
    env = {**os.environ, "FHIR_CM_DATABASE_URL": database_url, "FHIR_CM_FHIR_BASE": SERVER}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, "identify", "--ndjson", str(directory), "--json", "--top", "0"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"identify failed: {done.stderr.strip().splitlines()[-3:]}")
    rss_kb = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("MAXRSS"))
    return json.loads(done.stdout)["run"], wall, rss_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", default="10000,30000,100000")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    sizes = [int(n) for n in args.patients.split(",")]
    print(f"screening from NDJSON files, {args.store} store, one fresh process per N")
    print(
        f"{'patients':>9} {'resources':>10} {'candidates':>10} {'wall s':>7} {'patients/s':>10} {'peak RSS MB':>11} {'RSS ratio':>9}"
    )
    first_rss = None
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "export"
            directory.mkdir()
            resources = write_files(directory, n)
            if args.store == "sqlite":
                run, wall, rss_kb = screen(directory, f"sqlite:///{Path(tmp) / 'store.db'}")
            else:
                with temporary_database("fhir_cm_bench") as url:  # a database of its own on the local server
                    run, wall, rss_kb = screen(directory, url)
        first_rss = first_rss or rss_kb
        print(
            f"{run['patients']:>9} {resources:>10} {run['candidates']:>10} {wall:>7.1f} "
            f"{run['patients'] / wall:>10.0f} {rss_kb / 1024:>11.1f} {rss_kb / first_rss:>9.2f}"
        )
    print("goal: peak RSS flat in N (ratio ≈ 1.0)")


if __name__ == "__main__":
    main()

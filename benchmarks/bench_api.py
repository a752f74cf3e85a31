"""API latency under concurrent load on loopback: case create, case search and read, FHIR search.

    python benchmarks/bench_api.py [--requests N] [--concurrency C] [--seed-cases M]

Starts ``fhir-cm serve`` (uvicorn) in a subprocess on a fresh SQLite store in a temporary
directory, seeds M synthetic cases and two API keys, then sends N requests per scenario from C
concurrent httpx clients and prints p50/p99 latency and requests per second. Only 127.0.0.1 is
contacted; every loop is bounded by N. The figures are printed, never asserted: they depend on the
machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from fhir_cm.store import ApiRole, create_api_key, open_store, save_case
from fhir_cm.synthetic import generate_cases

STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(url: str, cases: int) -> tuple[str, str, list[str]]:
    with open_store(url) as store, store.session() as s:
        ids = []
        for case in generate_cases(cases, seed=42):
            save_case(s, case)
            ids.append(case.id)
        _, supervisor = create_api_key(s, name="bench-supervisor", role=ApiRole.SUPERVISOR)
        _, service = create_api_key(s, name="bench-service", role=ApiRole.SERVICE)
    return supervisor, service, ids


def _wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the server did not start in time")


async def _load(
    name: str, n: int, concurrency: int, call: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]], base: str
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal errors
            async with semaphore:
                started = time.perf_counter()
                response = await call(client, i)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "scenario": name,
        "requests": n,
        "errors": errors,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "rps": n / elapsed,
    }


def _case_body(i: int) -> dict[str, Any]:
    return {
        "programme": "health-care",
        "start": "2025-01-10",
        "patient": {"kind": "patient", "id": f"bench-patient-{i}"},
        "case_manager": {"kind": "practitioner", "id": f"bench-cm-{i % 7}"},
        "goals": [{"description": "walk 200 m unaided", "due": "2025-06-01"}],
    }


async def _run(args: argparse.Namespace, base: str, supervisor: str, service: str, ids: list[str]) -> list[dict[str, Any]]:
    sup = {"Authorization": f"Bearer {supervisor}"}
    svc = {"Authorization": f"Bearer {service}"}
    n, c = args.requests, args.concurrency
    scenarios: list[tuple[str, Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]]] = [
        ("POST /api/v1/cases (create)", lambda cl, i: cl.post("/api/v1/cases", json=_case_body(i), headers=sup)),
        ("GET /api/v1/cases/{id} (read)", lambda cl, i: cl.get(f"/api/v1/cases/{ids[i % len(ids)]}", headers=sup)),
        ("GET /api/v1/cases?programme&limit=20", lambda cl, i: cl.get(
            "/api/v1/cases", params={"programme": "health-care", "limit": 20}, headers=sup)),
    ]
    async with httpx.AsyncClient(base_url=base) as probe:
        has_facade = "/fhir/{resource_type}" in (await probe.get("/openapi.json")).json().get("paths", {})
    if has_facade:
        scenarios.append(("GET /fhir/EpisodeOfCare?_count=20 (FHIR search)", lambda cl, i: cl.get(
            "/fhir/EpisodeOfCare", params={"_count": 20}, headers=svc)))
    return [await _load(name, n, c, call, base) for name, call in scenarios]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per scenario (default 300)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent requests (default 16)")
    parser.add_argument("--seed-cases", type=int, default=200, help="synthetic cases in the store first (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        supervisor, service, ids = _seed(url, args.seed_cases)
        port = _free_port()
        env = {**os.environ, "FHIR_CM_DATABASE_URL": url}
        env.pop("FHIR_CM_FHIR_BASE", None)
        proc = subprocess.Popen(
            [sys.executable, "-c", "from fhir_cm.cli import main; main()", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_up(base, proc)
            results = asyncio.run(_run(args, base, supervisor, service, ids))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"fhir-cm API on SQLite, {args.seed_cases} seeded cases, {args.requests} requests per scenario, "
          f"concurrency {args.concurrency}")
    print(f"{'scenario':<50} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>7}")
    for r in results:
        print(f"{r['scenario']:<50} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['rps']:>8.1f} {r['errors']:>7}")


if __name__ == "__main__":
    main()

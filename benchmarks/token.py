"""Token validation cost: validations/s in-process (signature and claims only, and complete with
the revocation check), and token-protected requests/s (`GET /api/me`, answered from the token)
against `GET /healthz` of the same server in the same run, 16 concurrent keep-alive clients;
`GET /oauth/userinfo` (one database read more) for comparison. Prints JSON.
Goal: protected ≥ 80 % of baseline.

    python -m benchmarks.token [--seconds 8] [--validations 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import aiohttp
import orjson

from benchmarks.harness import LoadResult, Request, demo_token, drive, healthz, running_server
from medicus.demo import load_demo
from medicus.platform import build_platform
from medicus.settings import load_settings

DEMO_PHYSICIAN = "dr.berg@uk-nordstadt.example"


async def _prepare(url: str, data_dir: str) -> tuple[str, dict[str, float]]:
    """Demo data, a physician's access token for the server at `url`, and in-process
    validation rates."""
    settings = load_settings(data_dir=Path(data_dir), public_url=url)
    platform = build_platform(settings)
    try:
        await load_demo(platform)
        token = await demo_token(platform, DEMO_PHYSICIAN, "openid fhirUser user/*.rs")
        rates = {
            "decode_per_second": await _rate(platform.tokens.decode, token),
            "validate_per_second": await _rate(platform.tokens.validate, token),
        }
    finally:
        await platform.close()
    return token, rates


async def _rate(function: object, token: str, count: int = 3000) -> float:
    began = time.perf_counter()
    for _ in range(count):
        await function(token)  # type: ignore[operator]
    return round(count / (time.perf_counter() - began), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    with running_server() as (url, data_dir):
        token, in_process = asyncio.run(_prepare(url, data_dir))
        headers = {"Authorization": f"Bearer {token}"}

        def protected(path: str) -> Request:
            async def request(client: aiohttp.ClientSession, _number: int) -> int:
                async with client.get(path, headers=headers) as response:
                    await response.read()
                    return response.status

            return request

        def load(request: Request) -> LoadResult:
            return asyncio.run(drive(url, request, arguments.concurrency, arguments.seconds))

        baseline = load(healthz)
        me = load(protected("/api/me"))
        userinfo = load(protected("/oauth/userinfo"))
    report = {
        "benchmark": "token",
        "in_process": in_process,
        "baseline_healthz": baseline.as_json(),
        "protected_me": me.as_json(),
        "protected_to_baseline": round(me.requests_per_second / baseline.requests_per_second, 3),
        "userinfo_with_database_read": userinfo.as_json(),
        "userinfo_to_baseline": round(
            userinfo.requests_per_second / baseline.requests_per_second, 3
        ),
        "goal_protected_to_baseline": 0.8,
        "cpu_count": os.cpu_count(),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

"""The ceiling every later API is measured against: `/healthz` of a real `medicus serve`
process under 16 concurrent keep-alive clients. Prints JSON.

    python benchmarks/http_baseline.py [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform

import orjson

from benchmarks.harness import drive, healthz, running_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    with running_server() as (url, _data_dir):
        result = asyncio.run(drive(url, healthz, arguments.concurrency, arguments.seconds))
    report = {
        "benchmark": "http_baseline",
        "endpoint": "GET /healthz",
        "concurrency": arguments.concurrency,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **result.as_json(),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

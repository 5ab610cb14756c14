"""``python -m emulator`` / ``studio-emulator``: run the WaveSpeed emulator in the foreground.

Point a client at it with ``WAVESPEED_BASE_URL=http://127.0.0.1:8765`` and the key printed at
start-up; every setting can also come from ``EMULATOR_*`` environment variables.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import uvicorn

from emulator.app import create_app
from emulator.config import EmulatorConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="studio-emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", help="Bearer token to accept (default: emulator-key)")
    parser.add_argument("--processing-seconds", type=float)
    parser.add_argument("--queue-seconds", type=float)
    parser.add_argument("--balance", type=Decimal, dest="balance_usd")
    parser.add_argument("--max-concurrency", type=int)
    parser.add_argument("--submits-per-minute", type=int)
    parser.add_argument("--retention-seconds", type=float)
    parser.add_argument("--sync-timeout-seconds", type=float)
    parser.add_argument("--public-url", help="base URL to put into outputs and download URLs")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings: dict[str, Any] = {
        name: value
        for name, value in vars(args).items()
        if name not in ("host", "port", "log_level") and value is not None
    }
    config = EmulatorConfig(**settings)
    print(
        f"WaveSpeed emulator on http://{args.host}:{args.port} (admin: /_emulator/...)", flush=True
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()

"""`python -m ticketing_devstack`: the whole system on this machine (what `make dev` runs)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from ticketing_devstack.plan import DevstackError, Plan, build_plan
from ticketing_devstack.routes import RouteTableError
from ticketing_devstack.runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ticketing_devstack",
        description="Run every built service, NATS, Redis, localstripe and the nginx gateway "
        "in the foreground. Settings come from the environment (see README.md).",
    )
    parser.add_argument("--plan", type=Path, help="run this plan (JSON written by Stack)")
    parser.add_argument("--state-file", type=Path, help="write pids here once ready")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the Procfile and exit without starting"
    )
    args = parser.parse_args(argv)
    try:
        plan = Plan.model_validate_json(args.plan.read_text()) if args.plan else build_plan()
    except (DevstackError, RouteTableError, FileNotFoundError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(plan.procfile(os.environ), end="")
        print((plan.run_dir / "nginx.conf").read_text(), end="")
        shutil.rmtree(plan.run_dir, ignore_errors=True)
        return 0
    return run(plan, state_file=args.state_file)


if __name__ == "__main__":
    sys.exit(main())

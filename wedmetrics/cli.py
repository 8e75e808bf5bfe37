"""Command line: ``python -m wedmetrics demo | serve | backtest``."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

__all__ = ["main"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wedmetrics",
                                     description="wedmetrics: embeddable real-time metrics")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulated wedding-platform traffic through the whole "
                                       "pipeline into a SQLite file")
    demo.add_argument("--duration", type=float, default=None,
                      help="wall seconds (default 30; with --serve, until Ctrl-C)")
    demo.add_argument("--weddings", type=int, default=6, help="weddings in the calendar")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--speed", type=float, default=120.0,
                      help="simulated seconds per wall second (default 120: 30 s shows an hour)")
    demo.add_argument("--rate-scale", type=float, default=20.0,
                      help="multiplies every simulated event rate (load)")
    demo.add_argument("--db", default="wedmetrics-demo.db", help="SQLite file to write")
    demo.add_argument("--quiet", action="store_true", help="no live view, only the summary")
    demo.add_argument("--continue", dest="continue_db", action="store_true",
                      help="keep the --db file of an earlier demo run and continue its "
                           "simulated day (default: every run starts a fresh file)")
    demo.add_argument("--serve", type=int, metavar="PORT",
                      help="serve the live data on http://127.0.0.1:PORT while the demo runs "
                           "(needs the [http] extra); the demo then runs until Ctrl-C unless "
                           "--duration is given")
    sub.add_parser("serve", help="the HTTP hub over a store (needs the [http] extra)",
                   add_help=False)
    sub.add_parser("backtest", help="backtest alert rules on timestamp,value CSV data",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "backtest":
        from .alerting.backtest_cli import main as backtest_main

        return backtest_main(rest)
    if args.command == "serve":
        from .http.serve import main as serve_main

        return serve_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from .demo import run_demo

    duration = args.duration if args.duration is not None else \
        (math.inf if args.serve is not None else 30.0)
    try:
        return run_demo(duration=duration, weddings=args.weddings, seed=args.seed,
                        speed=args.speed, rate_scale=args.rate_scale, db=args.db,
                        quiet=args.quiet, continue_db=args.continue_db, serve=args.serve,
                        out=sys.stdout)
    except FileExistsError as exc:
        parser.error(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

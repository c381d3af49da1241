"""`python -m specops.serving ROOT ENDPOINT [--env E] [--port N] [--workers N] [--host H]`: run one endpoint's server."""
from __future__ import annotations

import argparse
import sys

from specops.errors import SpecopsError
from specops.project import Project
from specops.serving.server import prepare, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m specops.serving", description=__doc__)
    parser.add_argument("root", help="project root (holds specs/)")
    parser.add_argument("endpoint", help="Endpoint name")
    parser.add_argument("--env", help="environment from the Project spec (default: its default_environment)")
    parser.add_argument("--port", type=int, help="default: the spec's server.port")
    parser.add_argument("--workers", type=int, help="default: the spec's server.workers (0 = one per core)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    args = parser.parse_args(argv)
    try:
        config = prepare(Project(args.root, args.env).specs, args.endpoint, args.port, args.workers, args.host)
        return serve(config, args.host, announce=lambda m: print(m, flush=True))
    except SpecopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

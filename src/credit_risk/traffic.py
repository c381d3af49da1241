"""Production-like traffic for the example endpoint: applicants scored one at a time, outcomes reported back.

Rows come from the seeded generator (optionally drifted), each is POSTed to
`/score` with a request id, and its label is sent to `/feedback` in small
batches, as a loan book would report defaults. The endpoint's address and key
come from its running server's files, so this needs only the endpoint name.

    python -m credit_risk.traffic credit-scoring --seconds 30 --rate 100 [--drift income]

Used by the demo (in a thread, `Traffic(...).start()`) and the end-to-end tests.
"""
from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests

from credit_risk.generate import DRIFTS, generate

LABEL = "default"
FEEDBACK_BATCH = 20


class Traffic:
    def __init__(self, root: Path | str, endpoint: str, drift: str = "none", rate: float = 100.0,
                 max_requests: int = 1_000_000, seed: int = 11):
        from specops.core.paths import ProjectPaths
        from specops.serving import daemon
        from specops.serving.keys import ensure_keys

        paths = ProjectPaths(Path(root).resolve())
        info = daemon.server_info(paths, endpoint)
        if info is None:
            raise SystemExit(f"endpoint {endpoint!r} has no running server: `specops apply` deploys it")
        self.url = f"http://127.0.0.1:{info['port']}"
        self.headers = {"Authorization": f"Bearer {ensure_keys(paths.endpoint(endpoint))['primary']}"}
        frame = generate(5000, seed, drift)
        self.rows = [(row, int(label)) for row, label in zip(frame.drop(columns=[LABEL]).to_dict("records"), frame[LABEL])]
        self.interval, self.max_requests = 1.0 / rate, max_requests
        self.statuses: Counter[int] = Counter()
        self.deployments: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def __enter__(self) -> Traffic:
        return self if self._thread.is_alive() else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> Traffic:
        self._stop.set()
        self._thread.join(timeout=30)
        return self

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def summary(self) -> str:
        served = ", ".join(f"{name} {n}" for name, n in sorted(self.deployments.items()))
        failures = ", ".join(f"{'refused' if status == 0 else status} x{n}" for status, n in self.statuses.items() if status != 200)
        return (f"{sum(self.statuses.values())} requests, {self.failed} failed{' (' + failures + ')' if failures else ''}; "
                f"answered by {served or 'nobody'}")

    def _run(self) -> None:
        session, labels, prefix = requests.Session(), [], uuid.uuid4().hex[:8]
        for i in range(self.max_requests):
            if self._stop.is_set():
                break
            started = time.monotonic()
            row, label = self.rows[i % len(self.rows)]
            request_id = f"{prefix}-{i}"
            try:
                response = session.post(f"{self.url}/score", json={"data": [row]}, timeout=10,
                                        headers={**self.headers, "x-request-id": request_id})
                self.statuses[response.status_code] += 1
                self.deployments[response.headers.get("azureml-model-deployment", "?")] += 1
            except requests.ConnectionError:
                self.statuses[0] += 1  # refused: counted as a failure, never hidden
            labels.append({"request_id": request_id, "label": label})
            if len(labels) >= FEEDBACK_BATCH:
                session.post(f"{self.url}/feedback", json=labels, headers=self.headers, timeout=10)
                labels = []
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Send production-like traffic to a running endpoint (see the module docstring).")
    parser.add_argument("endpoint")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second (at most)")
    parser.add_argument("--drift", choices=sorted(DRIFTS), default="none")
    args = parser.parse_args(argv)
    traffic = Traffic(args.root, args.endpoint, args.drift, args.rate).start()
    time.sleep(args.seconds)
    print(traffic.stop().summary())


if __name__ == "__main__":
    main()

"""The rollout ports of the local backend: the endpoint server's traffic file, /metrics and inference log.

Traffic moves through `serving.traffic.set_traffic`, which a running server
follows within 0.1 s; a window is the difference of two /metrics scrapes;
labels come from the feedback the inference log holds; the champion is an
MLflow alias.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from specops.core.durations import seconds as duration_seconds
from specops.errors import SpecopsError
from specops.registry import CHAMPION, set_alias
from specops.rollout import analysis as an
from specops.rollout.loadtest import LoadTestResult, run_load_test
from specops.rollout.metrics import Snapshot, Traffic, scrape, window
from specops.rollout.ports import Observed, RolloutPorts, Window
from specops.serving.config import ServingConfig
from specops.serving.inference_log import read_log
from specops.serving.keys import ensure_keys
from specops.serving.server import CONFIG_FILE
from specops.serving.traffic import read_traffic, set_traffic
from specops.spec.endpoints import LoadTest

if TYPE_CHECKING:
    from specops.project import Project


def local_ports(project: Project, endpoint: str, host: str = "127.0.0.1") -> RolloutPorts:
    server = LocalServer(project, endpoint, host)
    return RolloutPorts(router=LocalRouter(project, server), metrics=LocalMetrics(server),
                        load_tester=LocalLoadTester(project, server), where="local")


class LocalServer:
    """The running endpoint server, as its files and its /metrics show it."""

    def __init__(self, project: Project, endpoint: str, host: str):
        self.name, self.host = endpoint, host
        self.state_dir = project.paths.endpoint(endpoint)

    def config(self) -> ServingConfig:
        path = self.state_dir / CONFIG_FILE
        if not path.exists():
            raise SpecopsError(f"endpoint {self.name!r} has no running server (no {path}); "
                               f"start it: specops endpoint serve {self.name}")
        return ServingConfig.load(path)

    def scrape(self) -> Snapshot:
        url = f"http://{self.host}:{self.config().port}/metrics"
        try:
            return scrape(url)
        except OSError as exc:
            raise SpecopsError(f"cannot read live metrics from {url}: {exc}") from None


class LocalRouter:
    def __init__(self, project: Project, server: LocalServer):
        self.project, self.server = project, server

    def versions(self) -> dict[str, str | None]:
        return {d.name: d.version for d in self.server.config().deployments}

    def traffic(self) -> dict[str, int]:
        weights, _ = read_traffic(self.server.state_dir)
        return {name: weight for name, weight in weights.items() if weight}

    def mirror(self) -> dict[str, int]:
        _, mirror = read_traffic(self.server.state_dir)
        return {name: share for name, share in mirror.items() if share}

    def route(self, weights: dict[str, int], mirror: dict[str, int]) -> None:
        deployments = [d.name for d in self.server.config().deployments]
        set_traffic(self.server.state_dir, deployments, weights, mirror)

    def set_champion(self, model: str, version: str) -> None:
        set_alias(self.project.registry, model, CHAMPION, version)


class LocalMetrics:
    measures: frozenset[str] | None = None  # the server's counters and the fed-back labels: every check the analysis knows
    poll_s = 1.0

    def __init__(self, server: LocalServer):
        self.server = server

    def mark(self) -> Window:
        return {"time": time.time(), "metrics": self.server.scrape()}

    def observe(self, window: Window, deployment: str, shadow: bool = False) -> Observed:
        since = window.get("time", 0.0)
        traffic = _window(window, self.server.scrape(), deployment)
        labelled, correct, errors = an.feedback_counts(read_log(self.server.state_dir, since=since), deployment, since, shadow)
        return Observed(traffic, labelled, correct, errors)


class LocalLoadTester:
    """Locust aimed at one deployment by header, through the server's primary key."""

    def __init__(self, project: Project, server: LocalServer):
        self.root, self.server = project.root, server

    def run(self, window: Window, deployment: str, spec: LoadTest) -> tuple[LoadTestResult, Window]:
        config = self.server.config()
        rows, types = self._rows(config, deployment, spec)
        before = self.server.scrape()
        measured = run_load_test(f"http://{self.server.host}:{config.port}", ensure_keys(self.server.state_dir)["primary"],
                                 rows, spec.users, spec.spawn_rate, duration_seconds(spec.duration),
                                 deployment=deployment, column_types=types)
        if window:  # synthetic requests are not live traffic: later analyses of this window skip them
            window = {**window, "metrics": _skip(window["metrics"], before, self.server.scrape(), deployment)}
        return measured, window

    def _rows(self, config: ServingConfig, deployment: str, spec: LoadTest) -> tuple[Path, dict[str, str]]:
        """The CSV the load test draws rows from (the spec's, else the deployment's Dataset) and its column types."""
        dataset = next(d.dataset for d in config.deployments if d.name == deployment)
        types = {name: column["type"] for name, column in dataset.get("columns", {}).items()}
        if spec.rows is not None:
            return self.root / spec.rows, types
        if dataset.get("format", "csv") != "csv":
            raise SpecopsError(f"the load test on {deployment!r} needs CSV rows: its Dataset {dataset['path']} is "
                               f"{dataset['format']}; give the step `rows: <file.csv>`")
        return self.root / dataset["path"], types


def _window(start: Window, after: Snapshot, deployment: str) -> Traffic:
    return window(start.get("metrics", {}), after, deployment)


def _skip(start: Snapshot, before: Snapshot, after: Snapshot, deployment: str) -> Snapshot:
    """Move a window's start past what `deployment` answered between two scrapes (a load test's requests)."""
    then, now_ = before.get(deployment), after.get(deployment)
    if then is None or now_ is None or now_["requests"] < then["requests"]:  # unknown, or the server restarted
        return start
    base = start.get(deployment) or {"requests": 0.0, "errors": 0.0, "buckets": [[b, 0.0] for b, _ in now_["buckets"]]}
    shifted = {"requests": base["requests"] + now_["requests"] - then["requests"],
               "errors": base["errors"] + now_["errors"] - then["errors"],
               "buckets": [[bound, count + b - a]
                           for (bound, count), (_, a), (_, b) in zip(base["buckets"], then["buckets"], now_["buckets"])]}
    return {**start, deployment: shifted}

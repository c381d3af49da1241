"""HTTP for specops' own clients: requests, retried by urllib3's Retry within fixed bounds.

Two kinds of caller. Scrapes of an endpoint server's /metrics: GET, our own
server, whose URL may appear in messages; one function and one parser
(prometheus_client's) for the rollout analysis and the SLO history. Webhook
POSTs: the URL is a secret reference's value (credentials, or a token in the
path), so nothing that leaves this module quotes it: not the error messages,
which name only the kind of failure, and not urllib3's log records (which do
quote it), silenced for the thread while it posts.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import LocationParseError
from urllib3.util import Retry, parse_url

from specops.errors import SpecopsError


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. The time one call can take is bounded: see `worst_case_s`."""

    attempts: int  # the first included
    timeout_s: float  # to connect, and again to read the answer, per attempt
    backoff_s: float  # urllib3's backoff_factor: no sleep before the second attempt, then 2b, 4b, ...
    max_wait_s: float  # the longest sleep between attempts, a server's Retry-After included
    statuses: frozenset[int]  # answers worth another attempt
    retry_reads: bool  # retry a request that was sent but got no answer: only if sending it twice is harmless

    @property
    def worst_case_s(self) -> float:
        return self.attempts * 2 * self.timeout_s + (self.attempts - 1) * self.max_wait_s


SCRAPE = RetryPolicy(attempts=3, timeout_s=5.0, backoff_s=0.1, max_wait_s=1.0,
                     statuses=frozenset({500, 502, 503, 504}), retry_reads=True)
# A webhook that was reached but did not answer may have acted on the POST: sending it again could alert twice.
WEBHOOK = RetryPolicy(attempts=3, timeout_s=5.0, backoff_s=0.5, max_wait_s=5.0,
                      statuses=frozenset({429, 500, 502, 503, 504}), retry_reads=False)


class RequestFailed(SpecopsError):
    """A request that got no 2xx answer. The message names the kind of failure, never the URL."""


class _CappedRetry(Retry):
    """urllib3's Retry, but a Retry-After is obeyed only up to backoff_max: a server asking for an hour
    must not hold the caller for an hour."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.backoff_max)


class ScrapeError(OSError):
    """The answer to a scrape was not the Prometheus text format. An OSError, as a refused connection is:
    callers treat both as "could not scrape"."""


def scrape_metrics(url: str, timeout_s: float = SCRAPE.timeout_s) -> list[Sample]:
    """GET a Prometheus text exposition (retried on refused connections and 5xx: SCRAPE) and parse it."""
    text = get_text(url, replace(SCRAPE, timeout_s=timeout_s))
    try:
        return metric_samples(text)
    except ValueError as exc:
        raise ScrapeError(f"{url} did not answer in the Prometheus text format ({exc})") from None


def metric_samples(text: str) -> list[Sample]:
    """Every sample of an exposition, by prometheus_client's parser. Sample names keep their suffixes
    (`..._total`, `..._bucket`) whether or not the text declares the family's type."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def get_text(url: str, policy: RetryPolicy = SCRAPE) -> str:
    """The body of a GET; requests' exceptions (OSErrors) as they come, a 4xx or 5xx answer included."""
    with _session(policy, "GET") as session:
        response = session.get(url, timeout=policy.timeout_s, allow_redirects=False)
        response.raise_for_status()
        return response.text


def post_json(url: str, payload: Any, policy: RetryPolicy = WEBHOOK) -> int:
    """POST `payload` as JSON to an http(s) URL (credentials in it go as basic auth); the 2xx status,
    else RequestFailed. A redirect is a failure too: the payload goes only where the URL says."""
    _check_http_url(url)
    body = json.dumps(payload).encode()
    with _quiet_urllib3(), _session(policy, "POST") as session:
        try:
            response = session.post(url, data=body, headers={"Content-Type": "application/json"},
                                    timeout=policy.timeout_s, allow_redirects=False)
        except requests.ConnectTimeout:
            raise RequestFailed(f"no connection within {policy.timeout_s:g}s ({_count(policy.attempts)})") from None
        except requests.ConnectionError:
            raise RequestFailed(f"could not connect ({_count(policy.attempts)})") from None
        except requests.Timeout:
            raise RequestFailed(f"no answer within {policy.timeout_s:g}s") from None
        except (requests.RequestException, ValueError):  # their messages quote the URL
            raise RequestFailed("the request could not be sent") from None
    if not 200 <= response.status_code < 300:
        raise RequestFailed(f"HTTP {response.status_code} ({_count(_attempts(response))})")
    return response.status_code


def _check_http_url(url: str) -> None:
    try:
        parsed = parse_url(url)
    except LocationParseError:  # its message quotes the URL
        raise RequestFailed("not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise RequestFailed("not an http(s) URL")
    if not parsed.host:
        raise RequestFailed("not a valid URL: no host")


@contextmanager
def _session(policy: RetryPolicy, method: str) -> Iterator[requests.Session]:
    retries = policy.attempts - 1
    retry = _CappedRetry(total=retries, connect=retries, read=retries if policy.retry_reads else 0, status=retries,
                         other=0, redirect=0, backoff_factor=policy.backoff_s, backoff_max=policy.max_wait_s,
                         status_forcelist=policy.statuses, allowed_methods=frozenset({method}), raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry)
    with requests.Session() as session:
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        yield session


def _attempts(response: requests.Response) -> int:
    retries = getattr(response.raw, "retries", None)  # the Retry that led to this answer: its history is the earlier ones
    return len(retries.history) + 1 if retries is not None else 1


def _count(attempts: int) -> str:
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"


# urllib3 logs each connection, request line and retry with the URL in it. Records from a thread that is
# posting to a secret URL are dropped; each module's logger needs the filter (a parent's does not apply).
_posting = threading.local()


class _QuietWhilePosting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_posting, "active", False)


_FILTER = _QuietWhilePosting()
for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager", "urllib3.response",
              "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_FILTER)


@contextmanager
def _quiet_urllib3() -> Iterator[None]:
    _posting.active = True
    try:
        yield
    finally:
        _posting.active = False

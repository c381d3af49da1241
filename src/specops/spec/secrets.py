"""Secret literals in specs: values that look like keys, tokens or connection strings.

Specs live in git, so a secret written into one is leaked the moment it is
pushed. Every string value of every document is scanned (after the Jinja2
overlay is rendered, so a secret that arrives through `values` is caught too);
`${VAR}` references are removed first, so `AccountKey=${STORAGE_KEY}` is fine.

Two kinds of rule:

- patterns that are secrets wherever they appear (a storage account key in a
  connection string, a SAS signature, a bearer token, a private key block,
  GitHub and AWS tokens, a JWT, a password in a URL);
- a generic rule for fields whose *name* says secret (`*key*`, `*secret*`,
  `*password*`, `*token*`, `*connection_string*`, ...): a long, random-looking
  value there is taken to be the secret itself.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from specops.spec.refs import REF

PathT = tuple[str | int, ...]

# (what it looks like, pattern) — matched against the value with ${VAR} references removed.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("an Azure storage connection string with its account key (AccountKey=...)",
     re.compile(r"\bAccountKey=[A-Za-z0-9+/]{20,}={0,2}", re.IGNORECASE)),
    ("an Azure connection string with a shared access key (SharedAccessKey=...)",
     re.compile(r"\bSharedAccessKey=[A-Za-z0-9+/]{20,}={0,2}", re.IGNORECASE)),
    ("a SAS token (sig=...)",
     re.compile(r"(?:^|[?&;\s])sig=[A-Za-z0-9%+/]{16,}={0,2}")),
    ("a bearer token (Bearer ...)",
     re.compile(r"\bBearer\s+[A-Za-z0-9\-._~+/]{16,}=*")),
    ("a private key (-----BEGIN ... PRIVATE KEY-----)",
     re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("a GitHub token (ghp_/gho_/ghu_/ghs_/ghr_...)",
     re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a GitHub fine-grained token (github_pat_...)",
     re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}\b")),
    ("an AWS access key ID (AKIA...)",
     re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a JSON Web Token (eyJ....eyJ....)",
     re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("a URL with a password in it (scheme://user:password@host)",
     re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)),
]

# Field names that say "this holds a secret" (compared without separators, lowercase).
SECRET_NAME = re.compile(r"key|secret|password|passwd|pwd|token|credential|connectionstring|sas|signature")
# A value with no spaces, made of the characters keys and tokens use.
TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/=_\-~]{20,}")
HEX = re.compile(r"[0-9a-fA-F]{32,}")
MIN_ENTROPY = 3.5  # bits per character; English words and identifiers stay well below for mixed-case

ADVICE = "never write a secret in a spec: use a ${VAR} reference (resolved from the environment at apply time) or a Key Vault reference"


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(value: str) -> bool:
    """A long, random-looking token: base64/base62 with mixed case and digits, or a long hex string."""
    if HEX.fullmatch(value):
        return True
    if not TOKEN_CHARS.fullmatch(value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes == 3 and entropy(value) >= MIN_ENTROPY


def secret_name(key: Any) -> bool:
    return isinstance(key, str) and bool(SECRET_NAME.search(re.sub(r"[^a-z0-9]", "", key.lower())))


def classify(key: Any, value: str) -> str | None:
    """What the value looks like, if it looks like a secret; None if it does not."""
    text = REF.sub("", value)
    if not text.strip():
        return None
    for what, pattern in PATTERNS:
        if pattern.search(text):
            return what
    if secret_name(key) and looks_random(text.strip()):
        return "a secret (a long random value in a field named like a key, secret, password or token)"
    return None


def strings(node: Any, path: PathT = ()) -> Iterator[tuple[PathT, Any, str]]:
    """(path, the key holding it, value) for every string in a plain data structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                yield (*path, key), key, value
            else:
                yield from strings(value, (*path, key))
    elif isinstance(node, list):
        parent = path[-1] if path else None
        for i, value in enumerate(node):
            if isinstance(value, str):
                yield (*path, i), parent, value
            else:
                yield from strings(value, (*path, i))


def find_secrets(data: Any) -> Iterator[tuple[PathT, str, str]]:
    """(path, field name, what it looks like) for every value in `data` that looks like a secret."""
    for path, key, value in strings(data):
        what = classify(key, value)
        if what is not None:
            name = next((p for p in reversed(path) if isinstance(p, str)), "value")
            yield path, name, what

"""JSON Schema for every kind, so editors validate specs as people type."""
from __future__ import annotations

import json
from pathlib import Path

from specops.spec import KINDS


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, model in sorted(KINDS.items()):
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"specops {kind}"
        path = out / f"{kind}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written

"""Where every benchmark writes its figures: benchmarks/results/<name>-<UTC time>.json (gitignored)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def write_results(name: str, figures: dict) -> Path:
    """Write `figures` as JSON under a name stamped with the time, print and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)}")
    return path

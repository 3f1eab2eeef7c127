"""A season written to a folder: the CSVs a person opens in a spreadsheet or R, and the plots.

    written = write_season(season, "season1/", map_taxon="Equus quagga")

summary.csv, events.csv, other.csv, activity.csv (+ activity_<taxon>.png), overlap.csv, accumulation.csv
(+ accumulation.png), occupancy.csv, map.png (deployments on the country borders, sized by the events of
one taxon) and, for a package with problems, problems.txt. docs/season.md says what each column means.
Plots are PNGs drawn with matplotlib (no network, no browser); `season_zip` packs the same files.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from classifier.knowledge.geography import outlines
from classifier.results.activity import HOURS
from classifier.results.season import Season


class SeasonOutputError(ValueError):
    """An output folder that cannot be written; `str()` is one line."""


def write_season(season: Season, out: str | Path, *, map_taxon: str | None = None) -> list[Path]:
    """Write every file of the season into the folder `out` (made if missing); returns the paths written."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise SeasonOutputError(f"--out {folder}: is a file; name a folder for the season's files.")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in season_files(season, map_taxon=map_taxon):
        path = folder / name
        path.write_bytes(make())
        written.append(path)
    return written


def season_zip(season: Season, *, map_taxon: str | None = None) -> bytes:
    """The same files in one zip (the app's download)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, make in season_files(season, map_taxon=map_taxon):
            zf.writestr(name, make())
    return buffer.getvalue()


def season_files(season: Season, *, map_taxon: str | None = None) -> list[tuple[str, Callable[[], bytes]]]:
    """(file name, a function making its bytes) for each file of the season."""
    taxon = find_taxon(season, map_taxon) if map_taxon else default_map_taxon(season)
    files: list[tuple[str, Callable[[], bytes]]] = [
        ("summary.csv", lambda: _csv(season.summary, ("deploymentID", "scientificName", "events", "camera_days", "rai"))),
        ("events.csv", lambda: _csv(_event_rows(season), _EVENT_COLUMNS)),
        ("other.csv", lambda: _csv(_other_rows(season), _OTHER_COLUMNS)),
        ("activity.csv", lambda: _csv(_activity_rows(season), _ACTIVITY_COLUMNS)),
        ("overlap.csv", lambda: _csv(season.overlap, _OVERLAP_COLUMNS)),
        ("accumulation.csv", lambda: _csv(season.accumulation, ("camera_days", "species"))),
        ("occupancy.csv", lambda: _csv(season.occupancy, _OCCUPANCY_COLUMNS)),
        ("accumulation.png", lambda: _accumulation_png(season)),
    ]  # fmt: skip
    files += [
        (f"activity_{slug(a.taxon)}.png", lambda a=a: _activity_png(season, a)) for a in season.activity
    ]
    if any(s.latitude is not None and s.longitude is not None for s in season.data.sites):
        files.append(("map.png", lambda: _map_png(season, taxon)))
    if season.data.problems:
        files.append(("problems.txt", lambda: "".join(f"{p}\n" for p in season.data.problems).encode()))
    return files


def find_taxon(season: Season, text: str) -> str:
    """The season's taxon named by `text`: its scientific or English name, in any case."""
    wanted = text.strip().casefold()
    for taxon in season.taxa:
        if wanted in (taxon.casefold(), season.data.common_names.get(taxon, "").casefold()):
            return taxon
    raise SeasonOutputError(
        f"--map-species {text!r}: no event of it; the season's taxa are {', '.join(season.taxa) or 'none'}."
    )


def default_map_taxon(season: Season) -> str | None:
    """The taxon with the most events (the first by name on a tie); None without any."""
    counts = Counter(e.name for e in season.events)
    return min(counts, key=lambda t: (-counts[t], t)) if counts else None


def slug(name: str) -> str:
    """A file-name part for a taxon: "Equus quagga" -> "equus_quagga"."""
    return re.sub(r"[^a-z0-9]+", "_", name.casefold()).strip("_") or "taxon"


def label(season: Season, taxon: str) -> str:
    """ "Equus quagga (plains zebra)" when the package names it in English, else the scientific name."""
    common = season.data.common_names.get(taxon)
    return f"{taxon} ({common})" if common else taxon


# ------------------------------------------------------------------------------------------------- CSVs

_EVENT_COLUMNS = ("deploymentID", "scientificName", "start", "end", "observations")
_OTHER_COLUMNS = ("deploymentID", "observationType", "events", "observations")
_ACTIVITY_COLUMNS = ("scientificName", "events", "time", "hour", "density")
_OVERLAP_COLUMNS = (
    "speciesA",
    "speciesB",
    "eventsA",
    "eventsB",
    "estimator",
    "overlap",
    "lower95",
    "upper95",
)
_OCCUPANCY_COLUMNS = ("scientificName", "deployments_detected", "deployments", "naive_occupancy")


def _csv(rows: Iterable[dict[str, Any]], columns: Iterable[str]) -> bytes:
    names = list(columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in names})
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return str(value)


def _event_rows(season: Season) -> list[dict[str, Any]]:
    """deploymentID, scientificName, start, end, observations: camtrapR's record table after filtering."""
    return [
        {"deploymentID": e.deployment_id, "scientificName": e.name, "start": e.start, "end": e.end,
         "observations": e.observations}
        for e in season.events
    ]  # fmt: skip


def _other_rows(season: Season) -> list[dict[str, Any]]:
    """deploymentID, observationType, events, observations: what is not a taxon, with the same gap."""
    counts: dict[tuple[str, str], list[int]] = {}
    for e in season.other:
        found = counts.setdefault((e.deployment_id, e.name), [0, 0])
        found[0] += 1
        found[1] += e.observations
    return [
        {"deploymentID": d, "observationType": kind, "events": n, "observations": m}
        for (d, kind), (n, m) in sorted(counts.items())
    ]


def _activity_rows(season: Season) -> list[dict[str, Any]]:
    """scientificName, events, time (sun | clock), hour, density (per hour): each taxon's curve."""
    return [
        {
            "scientificName": a.taxon,
            "events": a.events,
            "time": a.basis,
            "hour": float(h),
            "density": float(d),
        }
        for a in season.activity
        for h, d in zip(HOURS, a.density, strict=True)
    ]


# ------------------------------------------------------------------------------------------------ plots


def _figure(width: float = 7.0, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _activity_png(season: Season, activity: Any) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot(HOURS, activity.density, color="#1f5f8b", linewidth=2)
    ax.fill_between(HOURS, activity.density, color="#1f5f8b", alpha=0.15)
    if activity.basis == "sun":
        for hour, name in ((6, "sunrise"), (18, "sunset")):
            ax.axvline(hour, color="#c98a00", linestyle="--", linewidth=1)
            ax.text(hour, ax.get_ylim()[1] * 0.97, f" {name}", color="#c98a00", va="top", fontsize=8)
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel(
        "sun time (sunrise 06:00, sunset 18:00)" if activity.basis == "sun" else "time of day (clock)"
    )
    ax.set_ylabel("activity density (per hour)")
    ax.set_title(f"{label(season, activity.taxon)}: {activity.events} events", fontsize=10)
    return _png(figure)


def _accumulation_png(season: Season) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    days = [0] + [r["camera_days"] for r in season.accumulation]
    ax.plot(days, [0] + [r["species"] for r in season.accumulation], color="#2e7d32", linewidth=2)
    ax.set_xlabel("camera-days")
    ax.set_ylabel("species expected")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title("Species accumulation (exact rarefaction over camera-days)", fontsize=10)
    return _png(figure)


def _map_png(season: Season, taxon: str | None) -> bytes:
    """Two panels on the country borders: the region (8 degrees at least, the study area boxed) and the
    deployments, each sized by the events of `taxon` (open circles: none)."""
    placed = [s for s in season.data.sites if s.latitude is not None and s.longitude is not None]
    lons, lats = np.array([s.longitude for s in placed]), np.array([s.latitude for s in placed])
    pad = max(0.05, 0.15 * max(np.ptp(lons), np.ptp(lats)))
    box = (lons.min() - pad, lats.min() - pad, lons.max() + pad, lats.max() + pad)
    half = max(4.0, np.ptp(lons), np.ptp(lats))
    middle = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    region = (middle[0] - half, max(middle[1] - half, -90), middle[0] + half, min(middle[1] + half, 90))
    figure = _figure(11.0, 5.5)
    overview, detail = figure.subplots(1, 2, width_ratios=(1, 1.3))
    for ax, (west, south, east, north) in ((overview, region), (detail, box)):
        for ring in outlines(west, south, east, north):
            ax.plot(ring[:, 0], ring[:, 1], color="#8a8a8a", linewidth=0.8)
        ax.set_xlim(west, east)
        ax.set_ylim(south, north)
        ax.set_aspect(1 / max(math.cos(math.radians((south + north) / 2)), 0.1))
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
    overview.add_patch(_rectangle(box))
    overview.set_title("Region (study area boxed)", fontsize=10)
    counts = season.events_at(taxon) if taxon else {}
    events = np.array([counts.get(s.deployment_id, 0) for s in placed], dtype=float)
    sizes = 20 + 400 * np.sqrt(events / events.max()) if events.max() > 0 else np.full(len(placed), 20.0)
    seen = events > 0
    detail.scatter(
        lons[seen], lats[seen], s=sizes[seen], color="#b3402a", alpha=0.7, edgecolor="white", zorder=3
    )
    detail.scatter(lons[~seen], lats[~seen], s=20, facecolor="none", edgecolor="#333333", zorder=3)
    if len(placed) <= 30:
        for site, x, y in zip(placed, lons, lats, strict=True):
            detail.annotate(site.deployment_id, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    what = f"events of {label(season, taxon)}" if taxon else "deployments"
    detail.set_title(f"Deployments sized by {what}" if taxon else "Deployments", fontsize=10)
    return _png(figure)


def _rectangle(box: tuple[float, float, float, float]) -> Any:
    from matplotlib.patches import Rectangle

    west, south, east, north = box
    return Rectangle(
        (west, south), east - west, north - south, fill=False, edgecolor="#b3402a", linewidth=1.5
    )

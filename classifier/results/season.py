"""A season's ecology from its labels: independent events, effort and relative abundance, daily activity and
its overlap between species, species accumulation and naive occupancy, each computed as the R package the
field uses does (docs/season.md lists them).

    season = analyse(load_season("season1.zip"), gap_minutes=30)     # classifier.results.season_input
    season.summary[0]   # {"deploymentID": "A", "scientificName": "Equus quagga", "events": 4, ...}

- Events: a deployment's observations of one taxon, in time order; one starts a new event when it comes at
  least `gap_minutes` after the taxon's previous observation there. This is camtrapR's
  filterRecordTable(minDeltaTime = gap, deltaTimeComparedTo = "lastRecord", removeDuplicateRecords = TRUE)
  with each deployment its own station; with gap 0 every distinct time is an event (the package's own
  events, as camtraptor's get_n_obs() counts them, when it has event-level observations).
- Camera-days: camtraptor's get_effort(unit = "day"), the deployment's end minus its start in days.
- RAI: camtraptor's get_rai(): events x 100 / camera-days; the `all` rows add up events and camera-days.
- Activity and overlap: `classifier.results.activity` (R's `overlap`), on sun time where every deployment
  with events has a position (overlap::sunTime), else on the clock.
- Accumulation: the species expected in t camera-days drawn from the season's (vegan's
  specaccum(method = "exact"), the interpolation of iNEXT for incidence data), a camera-day being one
  deployment on one calendar day; only taxa at species rank count.
- Naive occupancy: the share of deployments with at least one event of the taxon.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import combinations

import numpy as np
from scipy.special import gammaln

from classifier.knowledge.sun import sun_time
from classifier.results.activity import TWO_PI, Draws, Overlap, activity_density, bandwidth, overlap
from classifier.results.season_input import SeasonData, Sighting, Site

DEFAULT_GAP_MINUTES = 30.0  # the field's usual independence interval
MIN_EVENTS = 10  # fewer events give an activity curve (and an overlap) that says little
BOOTSTRAP_SAMPLES = 1000  # the overlap vignette: at least 1,000
SEED = 1  # bootstrap intervals are the same on every run
UNIDENTIFIED = "animal (unidentified)"  # an animal observation without a scientific name


@dataclass(frozen=True)
class Event:
    deployment_id: str
    name: str  # the taxon's scientific name, or the observation type of what is not a taxon
    start: datetime
    end: datetime
    observations: int


@dataclass(frozen=True)
class Activity:
    taxon: str
    events: int  # the events the curve rests on
    basis: str  # "sun" (sunrise 06:00, sunset 18:00) or "clock"
    density: np.ndarray  # per hour, at activity.HOURS


@dataclass
class Season:
    data: SeasonData
    gap_minutes: float
    events: list[Event]  # of taxa
    other: list[Event]  # of blanks, people, vehicles, unidentified animals...: not taxa, listed apart
    taxa: list[str]
    summary: list[dict[str, object]]
    occupancy: list[dict[str, object]]
    accumulation: list[dict[str, object]]
    activity: list[Activity]
    overlap: list[dict[str, object]]
    warnings: list[str] = field(default_factory=list)

    def events_at(self, taxon: str) -> dict[str, int]:
        """Events of `taxon` per deployment (every deployment, 0 where none), for the map."""
        counts = dict.fromkeys((s.deployment_id for s in self.data.sites), 0)
        for event in self.events:
            if event.name == taxon:
                counts[event.deployment_id] += 1
        return counts


def analyse(
    data: SeasonData,
    *,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    min_events: int = MIN_EVENTS,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = SEED,
) -> Season:
    """Every figure of the season (`Season`); `gap_minutes` separates independent events."""
    if gap_minutes < 0 or not math.isfinite(gap_minutes):
        raise ValueError(f"the event gap must be 0 minutes or more (got {gap_minutes})")
    taxa_sightings = [s for s in data.sightings if s.kind == "animal" and s.taxon]
    others = [s for s in data.sightings if not (s.kind == "animal" and s.taxon)]
    events = independent_events(taxa_sightings, gap_minutes)
    taxa = sorted({e.name for e in events})
    warnings = list(data.warnings)
    times, basis, skipped = _event_times(data.sites, events, taxa)
    activity = [
        Activity(t, len(times[t]), basis, activity_density(times[t]))
        for t in taxa
        if _enough(times[t], min_events)
    ]
    if skipped:
        warnings.append(
            f"{skipped} events fell in a polar day or night (no sunrise or sunset): left out of activity."
        )
    return Season(
        data=data,
        gap_minutes=gap_minutes,
        events=events,
        other=independent_events(others, gap_minutes, by_kind=True),
        taxa=taxa,
        summary=summary_rows(data.sites, events, taxa),
        occupancy=occupancy_rows(data.sites, events, taxa),
        accumulation=accumulation_rows(data.sites, events, [t for t in taxa if _is_species(t, data.ranks)]),
        activity=activity,
        overlap=_overlaps({a.taxon: times[a.taxon] for a in activity}, bootstrap, seed),
        warnings=warnings,
    )


def independent_events(
    sightings: list[Sighting], gap_minutes: float, *, by_kind: bool = False
) -> list[Event]:
    """Events per deployment and taxon (or observation type, `by_kind`): see the module docstring."""
    gap = timedelta(minutes=gap_minutes)
    groups: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for s in sightings:
        name = (UNIDENTIFIED if s.kind == "animal" else s.kind) if by_kind else s.taxon
        groups[(s.deployment_id, name)].append(s.time)
    events = []
    for (deployment, name), times in sorted(groups.items()):
        times.sort()
        start = last = times[0]
        count = 1
        for t in times[1:]:
            if t - last >= gap and t != last:
                events.append(Event(deployment, name, start, last, count))
                start, count = t, 0
            last, count = t, count + 1
        events.append(Event(deployment, name, start, last, count))
    return events


def summary_rows(sites: list[Site], events: list[Event], taxa: list[str]) -> list[dict[str, object]]:
    """deploymentID, scientificName, events, camera_days, rai: every deployment with every taxon (0 where
    none, as get_rai gives them), then the season's `all` rows."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for e in events:
        counts[(e.deployment_id, e.name)] += 1
    rows = [
        _summary(s.deployment_id, taxon, counts[(s.deployment_id, taxon)], s.camera_days)
        for s in sites
        for taxon in taxa
    ]
    total_days = sum(s.camera_days for s in sites)
    rows += [_summary("all", t, sum(counts[(s.deployment_id, t)] for s in sites), total_days) for t in taxa]
    return rows


def _summary(deployment: str, taxon: str, events: int, days: float) -> dict[str, object]:
    rai = events * 100 / days if days > 0 else None  # a deployment of no time has no rate
    return {
        "deploymentID": deployment,
        "scientificName": taxon,
        "events": events,
        "camera_days": days,
        "rai": rai,
    }


def occupancy_rows(sites: list[Site], events: list[Event], taxa: list[str]) -> list[dict[str, object]]:
    """scientificName, deployments with an event, deployments, naive_occupancy."""
    where = defaultdict(set)
    for e in events:
        where[e.name].add(e.deployment_id)
    return [
        {"scientificName": t, "deployments_detected": len(where[t]), "deployments": len(sites),
         "naive_occupancy": len(where[t]) / len(sites)}
        for t in taxa
    ]  # fmt: skip


def camera_day_units(site: Site) -> list[date]:
    """The calendar days (in the time zone of the deployment's start) the camera ran on: its sampling units."""
    end = site.end.astimezone(site.start.tzinfo)
    last = end.date() - timedelta(days=1) if end.time() == datetime.min.time() else end.date()
    days = (last - site.start.date()).days + 1
    return [site.start.date() + timedelta(days=i) for i in range(max(days, 1))]


def accumulation_rows(sites: list[Site], events: list[Event], species: list[str]) -> list[dict[str, object]]:
    """camera_days (t, 1..all), species: the number of species expected in t camera-days drawn at random
    without replacement from the season's (vegan's specaccum(method = "exact"))."""
    units = {(s.deployment_id, d) for s in sites for d in camera_day_units(s)}
    zones = {s.deployment_id: s.start.tzinfo for s in sites}
    total = len(units)
    wanted = set(species)
    found: dict[str, set[tuple[str, date]]] = defaultdict(set)
    for e in events:
        unit = (e.deployment_id, e.start.astimezone(zones[e.deployment_id]).date())
        if e.name in wanted and unit in units:
            found[e.name].add(unit)
    t = np.arange(1, total + 1)
    expected = np.zeros(total)
    for units_with in found.values():
        missing = total - len(units_with)  # camera-days without the species
        with np.errstate(invalid="ignore"):
            # C(missing, t) / C(total, t): the chance that t camera-days all miss it
            log_miss = (
                gammaln(missing + 1) - gammaln(missing - t + 1) - gammaln(total + 1) + gammaln(total - t + 1)
            )
        expected += np.where(t <= missing, 1 - np.exp(log_miss), 1.0)
    return [{"camera_days": int(n), "species": float(s)} for n, s in zip(t, expected, strict=True)]


def _is_species(taxon: str, ranks: dict[str, str]) -> bool:
    rank = ranks.get(taxon, "")
    return rank in ("species", "subspecies") if rank else len(taxon.split()) >= 2  # a binomial


def event_time(event: Event, site: Site, basis: str) -> float | None:
    """The event's start in radians on the day's circle: sun time (overlap::sunTime) or clock time."""
    if basis == "sun":
        return sun_time(event.start, site.latitude, site.longitude)
    t = event.start.astimezone(site.start.tzinfo)  # the camera's clock: its deployment's time zone
    return (t.hour * 3600 + t.minute * 60 + t.second) / 86400 * TWO_PI


def _event_times(
    sites: list[Site], events: list[Event], taxa: list[str]
) -> tuple[dict[str, np.ndarray], str, int]:
    """Each taxon's event times in radians, on sun time where every deployment with events has a
    position, else on the clock; and how many events had no sun time (polar day or night)."""
    by_id = {s.deployment_id: s for s in sites}
    used = {e.deployment_id for e in events}
    placed = all(by_id[d].latitude is not None and by_id[d].longitude is not None for d in used)
    basis = "sun" if used and placed else "clock"
    found: dict[str, list[float]] = {t: [] for t in taxa}
    skipped = 0
    for e in events:
        t = event_time(e, by_id[e.deployment_id], basis)
        if t is None:
            skipped += 1
        else:
            found[e.name].append(t)
    return {t: np.array(v) for t, v in found.items()}, basis, skipped


def _enough(times: np.ndarray, min_events: int) -> bool:
    """Enough events for a curve, at two distinct times at least, with a bandwidth (not evenly spread)."""
    return len(times) >= max(min_events, 2) and len(np.unique(times)) >= 2 and math.isfinite(bandwidth(times))


def _overlaps(times: dict[str, np.ndarray], samples: int, seed: int) -> list[dict[str, object]]:
    """speciesA, speciesB, their events, the estimator, the overlap and its bootstrap 95% interval, for
    every pair of taxa with an activity curve. Each taxon's bootstrap samples are drawn once, from a
    generator of the seed and its name, and serve all its pairs: the same files on every run, and a
    pair's interval does not depend on which other taxa the season has."""
    draws = {
        taxon: Draws(times[taxon], samples, np.random.default_rng([seed, zlib.crc32(taxon.encode())]))
        for taxon in sorted(times)
    }
    rows = []
    for a, b in combinations(sorted(times), 2):
        found: Overlap = overlap(draws[a], draws[b])
        rows.append(
            {"speciesA": a, "speciesB": b, "eventsA": len(times[a]), "eventsB": len(times[b]),
             "estimator": found.estimator, "overlap": found.estimate, "lower95": found.lower,
             "upper95": found.upper}
        )  # fmt: skip
    return rows

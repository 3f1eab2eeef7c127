"""`python -m classifier season` and the library under it: figures checked against values worked out by
hand on small generated packages (docs/season.md names the R function each one equals), the overlap
estimators against known distributions, and sun times against the almanac."""

from __future__ import annotations

import csv
import math
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import vonmises

from classifier import cli
from classifier.intake.camtrap_dp_schema import field_names
from classifier.knowledge.sun import sun_time, sunrise_sunset
from classifier.results.activity import (
    HOURS,
    bandwidth,
    basic0_interval,
    density,
    overlap,
    overlap_estimate,
    quantile_interval,
)
from classifier.results.camtrap_dp import write_camtrap_dp
from classifier.results.deployments import parse_deployments
from classifier.results.season import analyse
from classifier.results.season_files import write_season
from classifier.results.season_input import SeasonError, from_records, load_season
from classifier.results.taxa import Taxon
from classifier.schema.rows import Row
from tests.test_camtrap_dp import write_package

ZEBRA, GENET, LION = "Equus quagga", "Genetta genetta", "Panthera leo"


def at(day: int, hour: int, minute: int = 0) -> str:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def hand_package(folder: Path) -> Path:
    """Three deployments; B gives no start or end; the genet is seen at C only.

    A: 2024-03-01 00:00 to 03-11 00:00 (10 camera-days); zebras at 06:00, 06:10, 06:39 (29 minutes after
       the last: same event), 07:09 (30 minutes: a new one) and on 03-02 12:00; a lion on 03-05; a person.
    B: no start or end: a blank photo 03-02 00:00 and one 03-04 12:00 are its first and last (2.5 days);
       a zebra on 03-03 18:00.
    C: 03-01 12:00 to 03-06 00:00 (4.5 days); a genet at 02:00 and 02:20 on 03-03 (one event).
    """
    sightings = [
        ("A", at(1, 6), "animal", ZEBRA), ("A", at(1, 6, 10), "animal", ZEBRA), ("A", at(1, 6, 39), "animal", ZEBRA),
        ("A", at(1, 7, 9), "animal", ZEBRA), ("A", at(2, 12), "animal", ZEBRA), ("A", at(5, 22), "animal", LION),
        ("A", at(6, 9), "human", ""), ("B", at(2, 0), "blank", ""), ("B", at(3, 18), "animal", ZEBRA),
        ("B", at(4, 12), "blank", ""), ("C", at(3, 2), "animal", GENET), ("C", at(3, 2, 20), "animal", GENET),
    ]  # fmt: skip
    media = [
        dict(mediaID=f"m{i}", deploymentID=d, timestamp=t, filePath=f"{d}/{i}.jpg", filePublic="false",
             fileMediatype="image/jpeg")
        for i, (d, t, _, _) in enumerate(sightings)
    ]  # fmt: skip
    observations = [
        dict(observationID=f"o{i}", deploymentID=d, mediaID=f"m{i}", eventStart=t, eventEnd=t,
             observationLevel="media", observationType=kind, scientificName=name)
        for i, (d, t, kind, name) in enumerate(sightings)
    ]  # fmt: skip
    deployments = [
        dict(deploymentID="A", latitude="-2.40", longitude="34.80", deploymentStart=at(1, 0), deploymentEnd=at(11, 0)),
        dict(deploymentID="B", latitude="-2.50", longitude="34.90"),
        dict(deploymentID="C", latitude="-2.60", longitude="35.00", deploymentStart=at(1, 12), deploymentEnd=at(6, 0)),
    ]  # fmt: skip
    taxonomic = [{"scientificName": n, "taxonRank": "species"} for n in (ZEBRA, GENET, LION)]
    taxonomic[0]["vernacularNames"] = {"eng": "plains zebra"}
    tables = {"deployments": deployments, "media": media, "observations": observations}
    return write_package(folder, tables, taxonomic=taxonomic)


def summary(season) -> dict[tuple[str, str], tuple]:
    return {
        (r["deploymentID"], r["scientificName"]): (r["events"], round(r["camera_days"], 6),
                                                   None if r["rai"] is None else round(r["rai"], 4))
        for r in season.summary
    }  # fmt: skip


# ------------------------------------------------------------------------------ events, effort, RAI


def test_events_camera_days_and_rai_match_the_hand_count(tmp_path):
    data = load_season(hand_package(tmp_path / "pkg"))
    season = analyse(data, bootstrap=20)
    assert summary(season) == {
        ("A", GENET): (0, 10.0, 0.0), ("A", ZEBRA): (3, 10.0, 30.0), ("A", LION): (1, 10.0, 10.0),
        ("B", GENET): (0, 2.5, 0.0), ("B", ZEBRA): (1, 2.5, 40.0), ("B", LION): (0, 2.5, 0.0),
        ("C", GENET): (1, 4.5, 22.2222), ("C", ZEBRA): (0, 4.5, 0.0), ("C", LION): (0, 4.5, 0.0),
        ("all", GENET): (1, 17.0, 5.8824), ("all", ZEBRA): (4, 17.0, 23.5294), ("all", LION): (1, 17.0, 5.8824),
    }  # fmt: skip
    # B has no start or end: the package's problem is listed, and the first and last photo stand in.
    assert [str(p) for p in data.problems] == [
        "deployments.csv line 3, deploymentStart: is empty but required: write the date and time with its "
        "time zone, as 2024-03-01T06:10:00Z or 2024-03-01T09:10:00+03:00.",
        "deployments.csv line 3, deploymentEnd: is empty but required: write the date and time with its time "
        "zone, as 2024-03-01T06:10:00Z or 2024-03-01T09:10:00+03:00.",
    ]
    assert any("first to their last photo" in w for w in season.warnings)
    assert [(e.deployment_id, e.name, e.observations) for e in season.events if e.name == ZEBRA] == [
        ("A", ZEBRA, 3), ("A", ZEBRA, 1), ("A", ZEBRA, 1), ("B", ZEBRA, 1)
    ]  # fmt: skip
    assert sorted((e.deployment_id, e.name, e.observations) for e in season.other) == [
        ("A", "human", 1), ("B", "blank", 1), ("B", "blank", 1)
    ]  # fmt: skip


@pytest.mark.parametrize(("gap", "zebra_at_a"), [(29, 4), (30, 3), (31, 2), (0, 5), (24 * 60 * 2, 1)])
def test_the_gap_decides_what_is_one_event(tmp_path, gap, zebra_at_a):
    """06:10 -> 06:39 is 29 minutes, 06:39 -> 07:09 is 30: camtrapR's rule, a gap of at least minDeltaTime."""
    season = analyse(load_season(hand_package(tmp_path / "pkg")), gap_minutes=gap, bootstrap=20)
    assert summary(season)[("A", ZEBRA)][0] == zebra_at_a


def test_event_level_observations_are_the_events_when_the_package_has_them(tmp_path):
    """A package with sequences (event-level observations) beside its photos: the events come from the
    sequences alone, and with a gap of 0 they are the package's own events (camtraptor's get_n_obs)."""
    folder = hand_package(tmp_path / "pkg")
    with open(folder / "observations.csv", "a", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=field_names("observations"), lineterminator="\n")
        for n, (start, end) in enumerate(
            [(at(1, 6), at(1, 6, 39)), (at(1, 7, 9), at(1, 7, 9)), (at(2, 12), at(2, 12))]
        ):
            writer.writerow(
                dict(
                    observationID=f"e{n}",
                    deploymentID="A",
                    eventID=f"seq{n}",
                    eventStart=start,
                    eventEnd=end,
                    observationLevel="event",
                    observationType="animal",
                    scientificName=ZEBRA,
                )
            )
    data = load_season(folder)
    assert data.level == "event" and len(data.sightings) == 3
    assert summary(analyse(data, gap_minutes=0, bootstrap=20))[("A", ZEBRA)][0] == 3
    assert (
        summary(analyse(data, gap_minutes=70, bootstrap=20))[("A", ZEBRA)][0] == 2
    )  # 06:00, 07:09 (69 min): one


def test_occupancy_and_accumulation_by_hand(tmp_path):
    season = analyse(load_season(hand_package(tmp_path / "pkg")), bootstrap=20)
    assert [(r["scientificName"], r["deployments_detected"], r["naive_occupancy"]) for r in season.occupancy] == [
        (ZEBRA, 2, pytest.approx(2 / 3)), (GENET, 1, pytest.approx(1 / 3)), (LION, 1, pytest.approx(1 / 3))
    ]  # fmt: skip
    # Camera-days as sampling units: A 03-01..03-10 (the end at midnight is not a day), B 03-02..03-04,
    # C 03-01..03-05: 18. Zebra on 3 of them (A 03-01, A 03-02, B 03-03), genet and lion on 1 each.
    curve = [r["species"] for r in season.accumulation]
    assert len(curve) == 18
    assert curve[0] == pytest.approx(5 / 18)
    assert curve[1] == pytest.approx((1 - 105 / 153) + 2 * (1 - 136 / 153))  # 1 - C(15,2)/C(18,2), ...
    assert curve[16] == pytest.approx(1 + 2 * 17 / 18)
    assert curve[17] == pytest.approx(3.0)


def test_a_rolled_up_taxon_counts_but_not_as_a_species(tmp_path):
    folder = hand_package(tmp_path / "pkg")
    text = (folder / "observations.csv").read_text().replace(LION, "Felidae")
    (folder / "observations.csv").write_text(text)
    season = analyse(load_season(folder), bootstrap=20)
    assert summary(season)[("A", "Felidae")] == (1, 10.0, 10.0)  # no rank given: one word is not a binomial
    assert season.accumulation[-1]["species"] == pytest.approx(2.0)


def test_predictions_give_the_figures_of_their_own_export(tmp_path):
    """Season of a predictions file == season of the package `export --format camtrap-dp` makes of it."""
    deployments = parse_deployments(
        "deploymentID,latitude,longitude,folder,timezone,deploymentStart,deploymentEnd\n"
        "A,-2.4,34.8,traps/A,+03:00,2024-03-01T00:00:00,2024-03-05T00:00:00\nB,-2.5,34.9,traps/B,+03:00,,\n"
    )
    taken = [(1, 6, 0), (1, 6, 20), (1, 9, 0), (2, 21, 0), (3, 4, 0)]
    records = [
        Row(f"traps/{'AB'[i % 2]}/{i}.jpg", label, 0.9, "ok", datetime=datetime(2024, 3, d, h, m),
               observation_type="animal", sequence_id=f"s{i}")
        for i, ((d, h, m), label) in enumerate(zip(taken * 2, ["zebra"] * 5 + ["cat (Felidae)"] * 5, strict=True))
    ]  # fmt: skip
    records[-1].rank = records[-2].rank = records[-3].rank = records[-4].rank = records[-5].rank = "family"
    taxa = {"zebra": Taxon("Plains zebra", "Equus quagga", {"genus": "Equus", "species": "quagga"})}
    direct = analyse(from_records(records, deployments, taxa), bootstrap=20)
    write_camtrap_dp(records, tmp_path / "p.zip", deployments=deployments, taxa=taxa)
    exported = analyse(load_season(tmp_path / "p.zip"), bootstrap=20)
    assert direct.summary == exported.summary and direct.events == exported.events
    assert direct.accumulation == exported.accumulation
    assert {r["scientificName"] for r in direct.summary} == {ZEBRA, "Felidae"}
    # B's first and last photos (of any label): 03-01 06:00 and 03-03 04:00, 1 day 22 hours.
    assert summary(direct)[("B", ZEBRA)] == (2, round(46 / 24, 6), round(200 / (46 / 24), 4))


def test_predictions_without_deployments_are_folders_without_positions(tmp_path):
    records = [
        Row(f"card/{site}/{i}.jpg", "zebra", 0.9, "ok", datetime=datetime(2024, 3, 1 + i, 19 + i, 0))
        for site in ("north", "south")
        for i in range(3)
    ]
    data = from_records(records, None, {"zebra": Taxon("Plains zebra", "Equus quagga", {})})
    season = analyse(data, min_events=3, bootstrap=20)
    assert [s.deployment_id for s in data.sites] == ["north", "south"]
    assert all(s.latitude is None for s in data.sites) and "no deployments CSV" in season.warnings[0]
    assert [a.basis for a in season.activity] == ["clock"]
    assert summary(season)[("north", ZEBRA)] == (
        3,
        round(50 / 24, 6),
        round(300 / (50 / 24), 4),
    )  # 03-01 19:00..03-03 21:00
    assert "map.png" not in {p.name for p in write_season(season, tmp_path / "out")}


@pytest.mark.shared
@pytest.mark.parametrize(("gap", "events"), [(60, 39), (0, 55)])
def test_camtrapr_sample_images_give_camtrapr_own_record_counts(shared_data, tmp_path, gap, events):
    """camtrapR's sample images (../shared/data/camera_traps/camtrapR_borneo: species folders, the station
    in each file name, EXIF times in Asia/Kuala_Lumpur). camtrapR's own tests expect 39 records from
    recordTable(minDeltaTime = 60, deltaTimeComparedTo = "lastRecord", exclude = "UNID") and 55 with
    minDeltaTime = 0 and removeDuplicateRecords = TRUE (tests/testthat/test_recordTable.R)."""
    from PIL import Image

    malaysia = timezone(timedelta(hours=8))
    media, observations = [], []
    for n, path in enumerate(sorted((shared_data / "camera_traps" / "camtrapR_borneo").rglob("*.JPG"))):
        with Image.open(path) as image:
            taken = datetime.strptime(image.getexif()[0x0132], "%Y:%m:%d %H:%M:%S").replace(tzinfo=malaysia)
        station, species = path.name.split("_")[0], path.parent.name
        media.append(
            dict(
                mediaID=f"m{n}",
                deploymentID=station,
                timestamp=taken.isoformat(),
                filePath=f"{species}/{path.name}",
                filePublic="false",
                fileMediatype="image/jpeg",
            )
        )
        observations.append(dict(observationID=f"o{n}", deploymentID=station, mediaID=f"m{n}",
                                 eventStart=taken.isoformat(), eventEnd=taken.isoformat(), observationLevel="media",
                                 observationType="animal",
                                 scientificName="" if species == "unidentified" else species))  # fmt: skip
    assert len(media) == 68
    first = {
        m["deploymentID"]: m["timestamp"] for m in sorted(media, key=lambda m: m["timestamp"], reverse=True)
    }
    last = {m["deploymentID"]: m["timestamp"] for m in sorted(media, key=lambda m: m["timestamp"])}
    deployments = [
        dict(
            deploymentID=s, latitude="4.6", longitude="116.9", deploymentStart=first[s], deploymentEnd=last[s]
        )
        for s in sorted(first)
    ]
    tables = {"deployments": deployments, "media": media, "observations": observations}
    season = analyse(load_season(write_package(tmp_path / "pkg", tables)), gap_minutes=gap, bootstrap=20)
    assert len(season.events) == events
    assert [(e.name, e.observations) for e in season.other] == [
        ("animal (unidentified)", 1)
    ]  # camtrapR's UNID


# -------------------------------------------------------------------------------------- activity, overlap


def test_identical_samples_overlap_completely_and_disjoint_ones_hardly():
    rng = np.random.default_rng(7)
    dawn = vonmises.rvs(20, loc=np.pi / 2, size=100, random_state=rng) % (2 * np.pi)
    dusk = vonmises.rvs(20, loc=3 * np.pi / 2, size=100, random_state=rng) % (2 * np.pi)
    assert overlap_estimate(dawn, dawn, "Dhat1") == pytest.approx(1.0, abs=1e-12)
    assert overlap_estimate(dawn, dawn, "Dhat4") == pytest.approx(1.0, abs=1e-12)
    assert overlap_estimate(dawn, dusk, "Dhat1") < 0.02
    assert overlap_estimate(dawn, dusk, "Dhat4") < 0.02


def test_overlap_estimates_the_true_overlap_of_known_distributions():
    """Two von Mises activity patterns whose true overlap is integrated numerically; Dhat4 (both samples
    >= 75) and Dhat1 (a small one) come within their sampling error, and the interval holds the truth."""
    a_mean, b_mean, kappa = 2.0, 3.0, 2.0
    truth = quad(lambda t: min(vonmises.pdf(t, kappa, a_mean), vonmises.pdf(t, kappa, b_mean)), -np.pi, np.pi,
                 limit=200)[0]  # fmt: skip
    # By hand: equal spreads cross half-way (and opposite), so the overlap is twice the chance that an
    # animal of A is active on B's half of the circle: from 0.5 to 0.5 + pi after A's mean.
    half = (
        vonmises.cdf(np.pi, kappa)
        - vonmises.cdf(0.5, kappa)
        + vonmises.cdf(0.5 - np.pi, kappa)
        - vonmises.cdf(-np.pi, kappa)
    )
    assert truth == pytest.approx(2 * half, abs=1e-6) and truth == pytest.approx(0.534, abs=1e-3)
    rng = np.random.default_rng(11)
    a = vonmises.rvs(kappa, loc=a_mean, size=400, random_state=rng) % (2 * np.pi)
    b = vonmises.rvs(kappa, loc=b_mean, size=400, random_state=rng) % (2 * np.pi)
    found = overlap(a, b, samples=200, rng=rng)
    assert found.estimator == "Dhat4" and found.estimate == pytest.approx(truth, abs=0.04)
    assert found.lower < truth < found.upper and found.bootstrap == 200
    small = overlap(a[:40], b, samples=200, rng=rng)
    assert small.estimator == "Dhat1" and small.estimate == pytest.approx(truth, abs=0.08)


def test_the_kernel_is_von_mises_and_dhat1_is_the_area_under_both():
    """densityFit of one time is the von Mises density; Dhat1 is the grid sum of min(f, g) of the two
    kernel densities with the bandwidth divided by 0.8 (overlapEst's adjust)."""
    grid = np.linspace(0, 2 * np.pi, 9)
    assert density(np.array([1.0]), grid, 3.5) == pytest.approx(vonmises.pdf(grid, 3.5, loc=1.0))
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 2 * np.pi, 30)
    b = vonmises.rvs(1.5, loc=4.0, size=25, random_state=rng) % (2 * np.pi)
    t = np.linspace(0, 2 * np.pi, 128)[1:]
    f = vonmises.pdf(t[:, None], bandwidth(a) / 0.8, loc=a[None, :]).mean(axis=1)
    g = vonmises.pdf(t[:, None], bandwidth(b) / 0.8, loc=b[None, :]).mean(axis=1)
    assert overlap_estimate(a, b, "Dhat1") == pytest.approx(np.minimum(f / f.sum(), g / g.sum()).sum())


def test_bootstrap_intervals_as_bootci_gives_them():
    ordered = np.arange(1.0, 1000.0)  # 999 values: the 25th and 975th (to R's rounding of 1000 * 0.025)
    assert quantile_interval(ordered) == pytest.approx((25.0, 975.0), abs=1e-9)
    low, high = quantile_interval(
        np.arange(1.0, 1001.0)
    )  # 1000: between order statistics, on the normal scale
    assert 25.0 < low < 26.0 and 975.0 < high < 976.0
    assert basic0_interval(500.0, ordered) == pytest.approx((25.0, 975.0), abs=1e-9)  # bias 0
    assert basic0_interval(490.0, ordered) == pytest.approx(
        (15.0, 965.0), abs=1e-9
    )  # mean 10 above: shifted down


def test_activity_curves_are_densities_on_sun_time(tmp_path):
    season = analyse(load_season(hand_package(tmp_path / "pkg")), min_events=3, bootstrap=20)
    (zebra,) = season.activity
    assert (zebra.taxon, zebra.events, zebra.basis) == (ZEBRA, 4, "sun")
    assert np.trapezoid(zebra.density, HOURS) == pytest.approx(1.0, abs=1e-3)
    assert season.overlap == []  # one taxon with enough events: no pair


def test_sunrise_and_sunset_match_the_almanac():
    def hours(text: str) -> float:
        h, m = text.split(":")
        return int(h) + int(m) / 60

    # London on the solstices (04:43/21:21 BST, 08:04/15:53 GMT); Sydney on new year (05:47/20:09 AEDT).
    for (lat, lon, day), (rise, set_) in {
        (51.5074, -0.1278, date(2024, 6, 21)): ("03:43", "20:21"),
        (51.5074, -0.1278, date(2024, 12, 21)): ("08:04", "15:53"),
        (-33.8688, 151.2093, date(2024, 1, 1)): ("-5:13", "09:09"),
    }.items():
        got = sunrise_sunset(lat, lon, day)
        assert got[0] == pytest.approx(
            hours(rise) if not rise.startswith("-") else -hours(rise[1:]), abs=3 / 60
        )
        assert got[1] == pytest.approx(hours(set_), abs=3 / 60)
    assert sunrise_sunset(69.65, 18.96, date(2024, 6, 21)) is None  # midnight sun in Tromso
    east_africa = timezone(timedelta(hours=3))
    rise, set_ = sunrise_sunset(-2.4, 34.8, date(2024, 3, 20))
    sunrise = datetime(2024, 3, 20, tzinfo=UTC) + timedelta(hours=rise)
    assert sun_time(sunrise.astimezone(east_africa), -2.4, 34.8) == pytest.approx(math.pi / 2, abs=1e-3)
    sunset = datetime(2024, 3, 20, tzinfo=UTC) + timedelta(hours=set_)
    assert sun_time(sunset, -2.4, 34.8) == pytest.approx(3 * math.pi / 2, abs=1e-3)


# ---------------------------------------------------------------------------------------------------- CLI


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_season_command_writes_every_file(tmp_path, capsys):
    package = hand_package(tmp_path / "pkg")
    out = tmp_path / "season"
    argv = ["season", str(package), "--out", str(out), "--bootstrap", "20", "--min-events", "1"]
    assert cli.main([*argv, "--map-species", "PLAINS zebra"]) == 0
    err = capsys.readouterr().err
    assert "3 deployments, 17.0 camera-days, 6 events of 3 taxa (gap 30 min)" in err
    assert "Problem: deployments.csv line 3, deploymentStart: is empty but required" in err
    names = {p.name for p in out.iterdir()}
    assert names >= {"summary.csv", "events.csv", "other.csv", "activity.csv", "overlap.csv", "accumulation.csv",
                     "occupancy.csv", "accumulation.png", "map.png", "problems.txt",
                     "activity_equus_quagga.png"}  # fmt: skip
    rows = read_csv(out / "summary.csv")
    assert list(rows[0]) == ["deploymentID", "scientificName", "events", "camera_days", "rai"]
    assert rows[-1] == {"deploymentID": "all", "scientificName": LION, "events": "1", "camera_days": "17",
                        "rai": "5.882353"}  # fmt: skip
    header = (out / "overlap.csv").read_text().splitlines()  # only the zebra has two events or more
    assert header == ["speciesA,speciesB,eventsA,eventsB,estimator,overlap,lower95,upper95"]
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--map-species", "okapi"], "--map-species 'okapi': no event of it; the season's taxa are"),
        (["--deployments", "d.csv"], "--deployments and --species are for a predictions file"),
        (["--species", "serengeti"], "--deployments and --species are for a predictions file"),
    ],
)
def test_season_command_refuses_in_one_line(tmp_path, capsys, extra, expected):
    package = hand_package(tmp_path / "pkg")
    assert cli.main(["season", str(package), "--out", str(tmp_path / "out"), *extra]) == 1
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_a_file_that_is_neither_is_refused(tmp_path, capsys):
    (tmp_path / "notes.csv").write_text("name,colour\nzebra,striped\n")
    assert cli.main(["season", str(tmp_path / "notes.csv"), "--out", str(tmp_path / "out")]) == 1
    assert "not a predictions file" in capsys.readouterr().err
    with pytest.raises(SeasonError, match="has no rows"):
        from_records([], None)

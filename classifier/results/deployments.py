"""Deployments: where each camera stood and when, read from a small CSV (`read_deployments`,
`parse_deployments`), and which deployment a photo belongs to (by folder, and camera)."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from classifier.schema.predictions_file import BadValue, ExportError, parse_datetime, parse_number
from classifier.schema.rows import Row

# Columns of the --deployments CSV: the first four are required.
DEPLOYMENT_COLUMNS = ("deploymentID", "latitude", "longitude", "folder")
DEPLOYMENT_OPTIONAL_COLUMNS = (
    "camera", "locationName", "locationID", "timezone", "deploymentStart", "deploymentEnd",
    "coordinateUncertainty", "cameraModel", "deploymentComments",
)  # fmt: skip


# ------------------------------------------------------------------------------------------- deployments


@dataclass
class Deployment:
    """One camera at one place for one period; photos belong to it by `folder` (and `camera`)."""

    deployment_id: str
    latitude: float | None  # None only for the season's folder groups; a written package needs it
    longitude: float | None
    folder: str
    camera: str = ""  # EXIF make and model as predict writes it; empty: any camera in the folder
    location_name: str = ""
    location_id: str = ""
    timezone: str = ""  # "+03:00", "Z" or an IANA name ("Africa/Dar_es_Salaam"): the camera clock's zone
    start: datetime | None = None
    end: datetime | None = None
    coordinate_uncertainty: int | None = None
    camera_model: str = ""
    comments: str = ""


def read_deployments(path: str | Path) -> list[Deployment]:
    """Read the deployments CSV: deploymentID, latitude, longitude, folder (+ `DEPLOYMENT_OPTIONAL_COLUMNS`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"--deployments {path}: cannot be read ({exc.strerror or exc}).") from None
    return parse_deployments(data, name=f"--deployments {path}")


def parse_deployments(data: bytes | str, *, name: str = "deployments") -> list[Deployment]:
    """The text of a deployments CSV (an upload, a table typed in the app); errors name `name`."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ExportError(f"{name}: is not UTF-8 text.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in DEPLOYMENT_COLUMNS if c not in header]
    if missing:
        raise ExportError(
            f"{name}: missing columns {', '.join(missing)} "
            f"(needed: {', '.join(DEPLOYMENT_COLUMNS)}; optional: {', '.join(DEPLOYMENT_OPTIONAL_COLUMNS)})."
        )
    reader.fieldnames = header
    deployments, seen = [], set()
    for raw in reader:
        values = {k: (v or "").strip() for k, v in raw.items() if k}
        if not any(values.values()):
            continue
        where = f"{name}: line {reader.line_num}"
        try:
            deployment = _deployment(values)
        except BadValue as exc:
            raise ExportError(f"{where}: {exc}") from None
        if deployment.deployment_id in seen:
            raise ExportError(f"{where}: deploymentID {deployment.deployment_id!r} is given twice.")
        seen.add(deployment.deployment_id)
        deployments.append(deployment)
    if not deployments:
        raise ExportError(f"{name}: has no deployments.")
    return deployments


def _deployment(values: dict[str, str]) -> Deployment:
    ident = values["deploymentID"]
    if not ident:
        raise BadValue("'deploymentID' is empty.")
    latitude, longitude = (
        parse_number(values["latitude"], "latitude"),
        parse_number(values["longitude"], "longitude"),
    )
    if latitude is None or longitude is None:
        raise BadValue(f"deployment {ident!r} needs a latitude and a longitude (decimal degrees, WGS84).")
    if not -90 <= latitude <= 90 or not -180 <= longitude <= 180:
        raise BadValue(
            f"deployment {ident!r}: latitude must be -90..90 and longitude -180..180 (decimal degrees)."
        )
    if not values["folder"]:
        raise BadValue(f"deployment {ident!r}: 'folder' is empty (the folder its photos are in).")
    zone = values.get("timezone", "")
    if zone:
        _zone(zone)  # refused now rather than half-way through the export
    uncertainty = parse_number(values.get("coordinateUncertainty"), "coordinateUncertainty")
    if uncertainty is not None and (uncertainty < 1 or uncertainty != int(uncertainty)):
        raise BadValue("'coordinateUncertainty' must be a whole number of metres, 1 or more.")
    start = parse_datetime(values.get("deploymentStart"), "deploymentStart")
    end = parse_datetime(values.get("deploymentEnd"), "deploymentEnd")
    return Deployment(
        deployment_id=ident,
        latitude=latitude,
        longitude=longitude,
        folder=values["folder"],
        camera=values.get("camera", ""),
        location_name=values.get("locationName", ""),
        location_id=values.get("locationID", ""),
        timezone=zone,
        start=start,
        end=end,
        coordinate_uncertainty=None if uncertainty is None else int(uncertainty),
        camera_model=values.get("cameraModel", ""),
        comments=values.get("deploymentComments", ""),
    )


_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


def _zone(text: str) -> tzinfo:
    if text.upper() in ("Z", "UTC"):
        return UTC
    match = _OFFSET.fullmatch(text)
    if match:
        sign = -1 if match[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadValue(
            f"'timezone' {text!r} is not a UTC offset (+03:00) or a time zone name (Africa/Nairobi)."
        ) from None


def _parts(path: str) -> tuple[str, ...]:
    text = path.replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return (("/", *parts) if text.startswith("/") else tuple(parts)) or (".",)


class _Matcher:
    """Which deployment a photo belongs to: the longest `folder` that contains it (a relative folder may
    sit anywhere in the photo's path: 'siteA' matches '/media/card/siteA/IMG_1.JPG'), and among those the
    one naming the photo's camera before one that names none."""

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self.deployments = [(d, _parts(d.folder)) for d in deployments]
        self.cache: dict[tuple[str, str], Deployment | None] = {}

    def __call__(self, record: Row) -> Deployment | None:
        parent = record.path.replace("\\", "/").rpartition("/")[0] or "."
        key = (parent, record.camera)
        if key not in self.cache:
            self.cache[key] = self._match(_parts(parent), record.camera)
        return self.cache[key]

    def _match(self, parent: tuple[str, ...], camera: str) -> Deployment | None:
        best: list[tuple[tuple[int, int], Deployment]] = []
        for deployment, folder in self.deployments:
            if deployment.camera and deployment.camera.casefold() != camera.strip().casefold():
                continue
            if folder == (".",) or _contains(parent, folder):
                best.append(((len(folder) if folder != (".",) else 0, bool(deployment.camera)), deployment))
        if not best:
            return None
        best.sort(key=lambda item: item[0], reverse=True)
        if len(best) > 1 and best[0][0] == best[1][0]:
            a, b = best[0][1].deployment_id, best[1][1].deployment_id
            raise ExportError(
                f"--deployments: photos in {'/'.join(parent)} match both {a!r} and {b!r}; "
                "make their folder or camera columns tell them apart."
            )
        return best[0][1]


def _contains(parent: tuple[str, ...], folder: tuple[str, ...]) -> bool:
    n = len(folder)
    if folder[0] == "/":  # an absolute folder: a prefix of the photo's folder
        return parent[:n] == folder
    return any(parent[i : i + n] == folder for i in range(len(parent) - n + 1))


def named_groups(records: Iterable[Row]) -> list[tuple[str, str, str, int]]:
    """(folder, camera, deploymentID, photos) of the photos' folder/camera groups, each group named after
    its folder and camera ("A-RECONYX-HC600"), in first-seen order: deployments for a person to place."""
    named, used = [], set()
    for folder, camera, photos in deployment_groups(records):
        name = PurePosixPath(folder).name if folder not in ("", ".") else "photos"
        ident = "-".join(p for p in (name, camera.replace(" ", "-")) if p) or "deployment"
        base, n = ident, 2
        while ident in used:
            ident, n = f"{base}-{n}", n + 1
        used.add(ident)
        named.append((folder, camera, ident, photos))
    return named


def folder_deployments(records: Iterable[Row]) -> list[Deployment]:
    """One deployment per folder and camera of the photos (`named_groups`), without a position or dates:
    what the season's analysis uses when no deployments CSV is given."""
    return [
        Deployment(ident, None, None, folder, camera) for folder, camera, ident, _ in named_groups(records)
    ]


def deployment_groups(records: Iterable[Row]) -> list[tuple[str, str, int]]:
    """(folder, camera, photos) of the photos, in first-seen order: the deployments to describe."""
    groups: Counter[tuple[str, str]] = Counter()
    for record in records:
        groups[(record.path.replace("\\", "/").rpartition("/")[0] or ".", record.camera)] += 1
    return [(folder, camera, n) for (folder, camera), n in groups.items()]

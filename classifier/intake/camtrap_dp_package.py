"""Camtrap DP 1.0.x packages read in: a folder, its datapackage.json, or a zip (as Agouti, Trapper, Wildlife
Insights, GBIF and this project's own `export` write them).

    package = read_camtrap_dp("season1.zip")
    package.observations[0]["eventStart"]    # a datetime with its time zone
    for problem in package.problems:         # every cell the standard's schemas refuse, one line each
        print(problem)

The three tables are parsed against the standard's own table schemas (`classifier.intake.camtrap_dp_schema`):
each value gets its type, and each problem a person can fix is listed with its file, line and field. A
package with problems is still read (what cannot be used is None); what to do about them is the caller's
choice. What cannot be read at all (no datapackage.json, a table missing, another version of the standard,
a path leaving the package) is a `CamtrapDPError`: one line saying what to do.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from classifier.intake.camtrap_dp_schema import TABLES, Problem, Table, check_keys, read_csv_table

DESCRIPTOR = "datapackage.json"
MAX_TABLE_BYTES = 2 * 2**30  # a table this size holds some 10 million observations
_VERSION = re.compile(r"camtrap-dp[^0-9]*?/(\d+\.\d+(?:\.\d+)?)/")


class CamtrapDPError(ValueError):
    """A package that cannot be read at all; `str()` is one line saying what to do."""


@dataclass
class CamtrapPackage:
    """A Camtrap DP package's metadata and tables, each row a dict of the schema's fields (typed)."""

    source: str
    descriptor: dict[str, Any]
    version: str  # from the package's profile ("1.0", "1.0.1", "1.0.2"), "" when it names none
    deployments: list[dict[str, Any]] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def taxa(self) -> dict[str, dict[str, Any]]:
        """The `taxonomic` entries of datapackage.json by scientificName (taxonRank, vernacularNames, ...)."""
        entries = self.descriptor.get("taxonomic")
        return {
            e["scientificName"]: e
            for e in entries if isinstance(e, dict) and isinstance(e.get("scientificName"), str)
        } if isinstance(entries, list) else {}  # fmt: skip


def read_camtrap_dp(path: str | Path) -> CamtrapPackage:
    """Read a package from its folder, its datapackage.json or a zip of it."""
    path = Path(path)
    if path.is_dir():
        root = path
        return _read(lambda name: _file(root / name), str(path))
    if path.name.lower().endswith(".json") and path.is_file():
        root = path.parent
        return _read(lambda name: _file(root / name), str(path), descriptor=path.name)
    if not path.exists():
        raise CamtrapDPError(
            f"{path}: no such file or folder; name a Camtrap DP folder, datapackage.json or zip."
        )
    return parse_camtrap_dp(_file(path), name=str(path))


def parse_camtrap_dp(data: bytes, *, name: str = "package") -> CamtrapPackage:
    """Read a package from the bytes of a zip (an upload)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise CamtrapDPError(
            f"{name}: not a zip archive; give the package's zip, folder or datapackage.json."
        ) from None
    with archive:
        names = {i.filename: i for i in archive.infolist() if not i.is_dir()}
        found = [n for n in names if PurePosixPath(n).name == DESCRIPTOR and "__MACOSX" not in n]
        found.sort(key=lambda n: n.count("/"))
        if not found:
            raise CamtrapDPError(f"{name}: the zip holds no {DESCRIPTOR}; it is not a Camtrap DP package.")
        prefix = found[0][: -len(DESCRIPTOR)]

        def member(entry: str) -> bytes:
            info = names.get(prefix + entry)
            if info is None:
                raise CamtrapDPError(f"{name}: {entry} is not in the zip; the package lists it as a table.")
            if info.file_size > MAX_TABLE_BYTES:
                raise CamtrapDPError(
                    f"{name}: {entry} is over {MAX_TABLE_BYTES // 2**30} GB unpacked; split it."
                )
            return archive.read(info)

        return _read(member, name)


def _file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise CamtrapDPError(f"{path}: is over {MAX_TABLE_BYTES // 2**30} GB; split the table.")
        return path.read_bytes()
    except FileNotFoundError:
        raise CamtrapDPError(f"{path}: not found; the package lists it as a table.") from None
    except OSError as exc:
        raise CamtrapDPError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


def _read(read: Callable[[str], bytes], source: str, descriptor: str = DESCRIPTOR) -> CamtrapPackage:
    try:
        meta = json.loads(read(descriptor).decode("utf-8-sig"))
    except CamtrapDPError:
        raise CamtrapDPError(f"{source}: no {DESCRIPTOR}; it is not a Camtrap DP package.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CamtrapDPError(f"{source}: {descriptor} is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict):
        raise CamtrapDPError(f"{source}: {descriptor} must be a JSON object.")
    version = _version(meta, source)
    resources = {r.get("name"): r for r in meta.get("resources", []) if isinstance(r, dict)}
    tables: dict[str, Table] = {}
    problems: list[Problem] = []
    for name in TABLES:
        resource = resources.get(name)
        if resource is None:
            raise CamtrapDPError(
                f"{source}: {descriptor} lists no '{name}' resource; a package has all three tables."
            )
        table, found = _table(name, resource, read, source)
        tables[name] = table
        problems += found
    problems += check_keys(tables)
    return CamtrapPackage(
        source=source,
        descriptor=meta,
        version=version,
        deployments=tables["deployments"].rows,
        media=tables["media"].rows,
        observations=tables["observations"].rows,
        problems=problems,
    )


def _version(meta: Mapping[str, Any], source: str) -> str:
    """The standard's version the profile names; another major version than 1.0 is refused."""
    profile = meta.get("profile")
    match = _VERSION.search(profile) if isinstance(profile, str) else None
    if match is None:
        return ""
    version = match[1]
    if not (version == "1.0" or version.startswith("1.0.")):
        raise CamtrapDPError(
            f"{source}: is Camtrap DP {version}; this reads 1.0.x packages (upgrade it, for instance with "
            "the camtrapdp R package's read_camtrapdp() and write_camtrapdp())."
        )
    return version


def _table(
    name: str, resource: Mapping[str, Any], read: Callable[[str], bytes], source: str
) -> tuple[Table, list[Problem]]:
    paths = resource.get("path")
    paths = [paths] if isinstance(paths, str) else paths
    if "data" in resource and not paths:
        raise CamtrapDPError(f"{source}: the '{name}' table is inline JSON data; write it as a CSV file.")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise CamtrapDPError(f"{source}: the '{name}' resource has no 'path' to its CSV file.")
    dialect = resource.get("dialect") if isinstance(resource.get("dialect"), dict) else {}
    delimiter = dialect.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        delimiter = ","
    table, problems = None, []
    for path in paths:
        _check_path(path, name, source)
        try:
            text = read(path).decode(resource.get("encoding") or "utf-8")
        except (LookupError, UnicodeDecodeError) as exc:
            raise CamtrapDPError(
                f"{source}: {path} is not {resource.get('encoding') or 'UTF-8'} text ({exc})."
            ) from None
        part, found = read_csv_table(name, text, file=PurePosixPath(path).name, delimiter=delimiter)
        problems += found
        if table is None:
            table = part
        else:
            table.rows += part.rows
            table.lines += part.lines
    assert table is not None
    return table, problems


def _check_path(path: str, name: str, source: str) -> None:
    if re.match(r"^[a-z][a-z0-9+.-]*://", path, re.IGNORECASE):
        raise CamtrapDPError(
            f"{source}: the '{name}' table is at a URL ({path}); download it into the package."
        )
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":"):
        raise CamtrapDPError(f"{source}: the '{name}' table's path {path!r} leaves the package; refused.")

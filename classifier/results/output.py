"""Where an export goes: `atomic_output` writes a temporary file beside the target and moves it into place
on success (or writes to standard output); `ExportResult` says what was written."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from classifier.schema.predictions_file import ExportError


@dataclass
class ExportResult:
    out: str
    images: int = 0
    observations: int = 0
    warnings: list[str] = field(default_factory=list)


class atomic_output:
    """Write to a temporary file beside `out` and move it into place on success ('-': standard output)."""

    def __init__(self, out: str | Path, *, binary: bool = False) -> None:
        self.out, self.binary = str(out), binary
        self.temp: str | None = None

    def __enter__(self) -> IO[Any]:
        if self.out == "-":
            import sys

            self.stream = sys.stdout.buffer if self.binary else sys.stdout
            return self.stream
        target = Path(self.out)
        try:
            fd, self.temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        except OSError as exc:
            raise ExportError(f"--out {self.out}: cannot be written ({exc.strerror or exc}).") from None
        self.stream = os.fdopen(fd, "wb") if self.binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self.stream

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.temp is None:
            self.stream.flush()
            return
        self.stream.close()
        if kind is None:
            try:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.temp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from others
                os.replace(self.temp, self.out)
                return
            except OSError as error:
                os.unlink(self.temp)
                raise ExportError(
                    f"--out {self.out}: cannot be written ({error.strerror or error})."
                ) from None
        os.unlink(self.temp)

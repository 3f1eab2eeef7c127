"""Memory measurements that do not depend on how the libraries came into the page cache.

Used by benchmarks/app_memory.py before its walk, and by the tests at the start of a run (tests/conftest.py),
before any test process maps the libraries: `tests/test_hosting.py` measures the app's memory with them.
"""

from __future__ import annotations

import os
from pathlib import Path


def drop_cached_libraries(environment: Path) -> int:
    """Ask the kernel to drop the cached pages of the environment's shared libraries (pages a process
    maps stay), so they are read again as after a restart; returns how many files were asked.

    How a library came into the page cache changes the resident set of a process that maps it: right after
    `pip install` wrote them, this machine's kernel (6.18) keeps the files in large folios and maps a whole
    folio on a fault, so the same walk measured 909 MiB without GPU libraries in a fresh clone (files 575
    MiB, 299 of them GPU libraries) and 776 MiB once they were read again (files 308, GPU 155), the
    anonymous memory alike. Those pages are clean and dropped first under pressure; the anonymous memory is
    what a host must keep."""
    if not (environment / "pyvenv.cfg").is_file():
        return 0  # not a virtual environment: the system's libraries are not this app's to drop
    asked = 0
    for library in environment.rglob("*.so*"):
        if library.is_file() and not library.is_symlink():
            descriptor = os.open(library, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                asked += 1
            finally:
                os.close(descriptor)
    return asked

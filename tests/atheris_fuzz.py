"""Coverage-guided fuzzing (atheris, libFuzzer) of what strangers' files and text reach first.

    .venv/bin/python tests/atheris_fuzz.py image|zip|yaml|url [libFuzzer options] [CORPUS_DIR ...]

Each target feeds the fuzzer's bytes to one reader and lets only its one-line refusal through; any
other exception is a crash that libFuzzer reports with the input that caused it (exit status not 0).
`-timeout=S` turns an input that runs longer than S seconds into a failure too. tests/test_fuzz.py runs
every target for a few seconds; the seeds (`write_seeds`) go into the first corpus folder named. Run
longer by hand: `... tests/atheris_fuzz.py zip -max_total_time=600 /tmp/zip-corpus`.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # classifier/, when run as a script

with atheris.instrument_imports(include=["PIL", "classifier", "yaml", "zipfile"]):
    import zipfile

    from PIL import Image

    from classifier.intake.images import ImageError, load_photo
    from classifier.intake.inputs import close_archives, expand_inputs, read_item
    from classifier.intake.items import InputError
    from classifier.intake.urlfetch import FetchError, check_url
    from classifier.knowledge.species import SpeciesInfoError, load_species_book

SCRATCH = Path(tempfile.mkdtemp(prefix="atheris-"))
SPECIES_YAML = Path(__file__).resolve().parents[1] / "species_info" / "otters.yaml"


def one_line(error: Exception) -> None:
    if "\n" in str(error) or not str(error):
        raise AssertionError(f"not a one-line reason: {str(error)!r}")


def fuzz_image(data: bytes) -> None:
    try:
        photo = load_photo(data, name="fuzz.jpg", target_size=64)
    except ImageError as error:
        one_line(error)
    else:
        assert photo.image.mode == "RGB"


def fuzz_zip(data: bytes) -> None:
    archive = SCRATCH / "fuzz.zip"
    archive.write_bytes(data)
    try:
        for item in expand_inputs([archive]).items:
            try:
                load_photo(read_item(item), name=item.name, target_size=64)
            except (InputError, ImageError) as error:
                one_line(error)
    finally:
        close_archives()


def fuzz_yaml(data: bytes) -> None:
    path = SCRATCH / "otters.yaml"
    path.write_bytes(data)
    try:
        load_species_book(path)
    except SpeciesInfoError as error:
        one_line(error)


def fuzz_url(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    try:
        checked = check_url(text)
    except FetchError as error:
        one_line(error)
    else:
        assert all(ipaddress.ip_address(a.split("%")[0]).is_global for a in checked.addresses), checked


def fake_dns(host: str, port: int, *args: object, **kwargs: object) -> list:
    """No network while fuzzing: names ending in "private" resolve to 10.0.0.1, all others to a public IP."""
    address = "10.0.0.1" if str(host).endswith("private") else "93.184.216.34"
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


TARGETS: dict[str, Callable[[bytes], None]] = {
    "image": fuzz_image,
    "zip": fuzz_zip,
    "yaml": fuzz_yaml,
    "url": fuzz_url,
}


def write_seeds(target: str, folder: Path) -> Path:
    """A few valid inputs for `target` in `folder`, for the fuzzer to mutate."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(_seeds(target)):
        (folder / f"seed-{index}").write_bytes(seed)
    return folder


def _seeds(target: str) -> list[bytes]:
    images = [_encoded(fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")]
    if target == "image":
        return images
    if target == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("DCIM/a.jpg", images[0])
            zf.writestr("b.png", images[1])
            zf.writestr("notes.txt", b"field notes")
        return [buffer.getvalue()]
    if target == "yaml":
        return [SPECIES_YAML.read_bytes()]
    return [b"https://example.org/cat.jpg", b"http://127.0.0.1:8080/a?b=c", b"http://[::ffff:10.0.0.1]/"]


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (40, 160, 60)).save(buffer, format=fmt)
    return buffer.getvalue()


def main() -> None:
    target = sys.argv.pop(1)
    corpus = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    if corpus:  # the first corpus folder is where libFuzzer starts from and keeps what it finds
        write_seeds(target, Path(corpus[0]))
    socket.getaddrinfo = fake_dns  # type: ignore[assignment]
    warnings.simplefilter("ignore")  # Pillow warns about every odd TIFF tag: noise around a real crash
    atheris.Setup(sys.argv, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()

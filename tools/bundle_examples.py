"""Give a bundle one small example photo per class, cut from its own training photos.

    .venv/bin/python tools/bundle_examples.py --model serengeti \\
        --source "Snapshot Serengeti field guide (zooniverse/Serengeti)" --licence "CDLA-Permissive-1.0" \\
        --notice "Snapshot Serengeti imagery is released under the Community Data License Agreement \\
    (Permissive, version 1.0) on LILA; the Zooniverse repository the field guide comes from is Apache-2.0."

For each class it reads the bundle's training photos (the report's `data.root`, or `--data`), runs the
bundle's animal detector on them (a bundle without one keeps whole photos), keeps the photo whose surest
box is largest (a box over a third of the frame counts as a third: an animal too close is usually cut
off), cuts a square around that box with some of the place around it, and saves it as a JPEG of at most
30 KB in `models/<name>/examples/<class>.jpg`, with `examples.json` (where each came from; the format is
in classifier/models/bundle_photos.py). People's boxes are blurred (`--blur`, default `human`), as the app
blurs them. `--prefer CLASS=FILE` picks a class's photo by hand after looking. The bundle's README gets
(or has replaced) an "Example photos" section naming the source and licence.

Only photos the bundle was trained on, and only from a collection whose licence allows sharing them: say
which with `--source`, `--licence` and `--notice`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from classifier.intake.datasets import read_dataset
from classifier.intake.images import load_photo
from classifier.models.bundle_photos import (
    MAX_EXAMPLE_BYTES,
    data_root,
    example_jpeg,
    example_picture,
    examples_folder,
    pick_example,
    write_examples,
)
from classifier.models.bundles import Bundle, resolve_bundle
from classifier.models.detect import detector_for
from classifier.models.runtimes import TORCH
from classifier.results.annotate import blur
from classifier.schema.rows import Detection

README_START = "<!-- examples: written by tools/bundle_examples.py -->"
README_END = "<!-- /examples -->"
DECODE_SIZE = 1024  # pixels: more than an example ever shows


def training_photos(bundle: Bundle, data: Path | None) -> dict[str, list[Path]]:
    """The bundle's training photos by class, in the order the dataset lists them."""
    root = data or data_root(bundle.report)
    if root is None or not root.exists():
        raise SystemExit(f"{bundle.name}: its training photos are not at {root}; pass --data FOLDER.")
    recipe = bundle.report.get("recipe") or {}
    dataset = read_dataset(
        root, bundle.report.get("data", {}).get("format"), image_root=recipe.get("image_root")
    )
    photos: dict[str, list[Path]] = {label: [] for label in bundle.classes}
    for record in dataset.records:
        if record.label in photos:
            photos[record.label].append(dataset.path(record))
    return photos


def choose(
    bundle: Bundle, photos: dict[str, list[Path]], prefer: dict[str, str], blurred: set[str]
) -> dict[str, tuple[bytes, str, Detection | None]]:
    """class -> (JPEG, training photo relative to the data's root, box) for every class with photos."""
    detector = detector_for(bundle, runtime=TORCH)
    root = data_root(bundle.report)
    chosen = {}
    for label, files in photos.items():
        if not files:
            continue
        images = {str(path): load_photo(path, target_size=DECODE_SIZE).image for path in files}
        found = detector.detect(list(images.values())) if detector else [[] for _ in images]
        candidates = [(name, boxes) for name, boxes in zip(images, found, strict=True)]
        if label in prefer:
            candidates = [c for c in candidates if Path(c[0]).name == prefer[label]] or candidates
        name, box = pick_example(candidates)
        picture = example_picture(images[name], box)
        if label in blurred:
            picture = blur_everyone(picture, images[name], box, found[list(images).index(name)])
        shown = (
            Path(name).relative_to(root).as_posix()
            if root and root in Path(name).parents
            else Path(name).name
        )
        chosen[label] = (example_jpeg(picture), shown, box)
        print(f"{label:20s} {shown:40s} box {_size(box)}  {len(chosen[label][0]):6d} bytes")
    return chosen


def blur_everyone(
    picture: Image.Image, frame: Image.Image, box: Detection | None, boxes: list[Detection]
) -> Image.Image:
    """The example with every detected box blurred (a person's face and figure cannot be made out)."""
    if box is None:
        for other in boxes:
            picture = blur(picture, other.bbox)
        return picture
    blurred = frame.convert("RGB")
    for other in boxes:
        blurred = blur(blurred, other.bbox)
    return example_picture(blurred, box)


def _size(box: Detection | None) -> str:
    return (
        "whole photo"
        if box is None
        else f"{box.bbox[2] * box.bbox[3]:.0%} of the frame at {box.detector_conf:.2f}"
    )


def readme_section(bundle: Bundle, count: int, source: str, licence: str, notice: str, command: str) -> str:
    return (
        f"{README_START}\n## Example photos\n\n"
        f"`examples/` holds one photo for each of {count} of the {len(bundle.classes)} classes, shown on the species "
        "pages, the look-alikes page, the landing page and in the quiz. Each is cut from one of this bundle's own "
        f"training photos (`examples/examples.json` names which), at most {MAX_EXAMPLE_BYTES // 1000} KB.\n\n"
        f"- **Source:** {source}.\n- **Licence:** {licence}. {notice}\n"
        f"- **Made with:** `{command}`\n{README_END}\n"
    )


def with_section(readme: str, section: str) -> str:
    """`readme` with its examples section replaced, or the section added at the end."""
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END) + "\n?", re.DOTALL)
    if pattern.search(readme):
        return pattern.sub(lambda _: section, readme)
    return readme.rstrip("\n") + "\n\n" + section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serengeti", help="bundle name or folder (default serengeti)")
    parser.add_argument("--data", type=Path, help="the training photos (default: the report's data.root)")
    parser.add_argument("--source", required=True, help="the collection the photos come from, as credited")
    parser.add_argument(
        "--licence", required=True, help="the photos' licence, short (shown under each photo)"
    )
    parser.add_argument("--notice", default="", help="the licence notice in full, for the README")
    parser.add_argument(
        "--prefer", action="append", default=[], metavar="CLASS=FILE", help="a class's photo by hand"
    )
    parser.add_argument(
        "--blur",
        default="human",
        metavar="CLASSES",
        help="classes whose boxes are blurred, by commas (default human; '' for none)",
    )
    args = parser.parse_args(argv)
    bundle = resolve_bundle(args.model)
    prefer = dict(item.split("=", 1) for item in args.prefer)
    blurred = {name.strip() for name in args.blur.split(",") if name.strip()}
    chosen = choose(bundle, training_photos(bundle, args.data), prefer, blurred)
    write_examples(examples_folder(bundle), chosen, args.source, args.licence)
    command = "python tools/bundle_examples.py " + " ".join(
        _quoted(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    readme = bundle.directory / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {bundle.title}\n"
    readme.write_text(
        with_section(
            text, readme_section(bundle, len(chosen), args.source, args.licence, args.notice, command)
        ),
        encoding="utf-8",
    )
    print(f"wrote {len(chosen)} examples to {examples_folder(bundle)} and the README's section")


def _quoted(argument: str) -> str:
    return f'"{argument}"' if not argument or re.search(r"[\s'()]", argument) else argument


if __name__ == "__main__":
    main()

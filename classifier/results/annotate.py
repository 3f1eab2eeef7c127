"""Photos with what the model found drawn on them: a box and a label for each animal, people blurred.

People caught by a camera trap (walkers, rangers, poachers) have a right not to be shown: by default the
inside of every box labelled human is blurred beyond recognition in what the app shows or exports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from classifier.schema.observations import observation_type
from classifier.schema.rows import ANIMAL, HUMAN, UNCERTAIN, Detection, pixel_box

COLOURS = {ANIMAL: (255, 196, 0), HUMAN: (0, 168, 255)}
OTHER_COLOUR = (230, 230, 230)


def annotate(
    image: Image.Image,
    detections: Sequence[Detection],
    *,
    name: Callable[[str], str] = str,
    blur_people: bool = True,
) -> Image.Image:
    """A copy of `image` with each detection's box and `name(label)`; people's boxes blurred first."""
    out = image.convert("RGB")
    if blur_people:
        for box in detections:
            if observation_type(box.label, detected=True) == HUMAN:
                out = blur(out, box.bbox)
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 250))
    font = _font(max(12, round(min(out.size) / 30)))
    for box in detections:
        left, top, right, bottom = pixel_box(out.size, box.bbox)
        colour = COLOURS.get(observation_type(box.label, detected=True), OTHER_COLOUR)
        draw.rectangle((left, top, right, bottom), outline=colour, width=width)
        _label(draw, (left, top), caption(box, name), colour, font)
    return out


def caption(box: Detection, name: Callable[[str], str] = str) -> str:
    """The label drawn on a box: its answer and score, and "not sure" where the answer is only a best
    guess (read alone, a bare name on the photo would look like the verdict)."""
    text = name(box.label) + ("" if box.confidence is None else f" {box.confidence:.0%}")
    return f"not sure: {text}" if box.status == UNCERTAIN else text


def blur(image: Image.Image, bbox: Sequence[float]) -> Image.Image:
    """A copy with the box's inside blurred so strongly that no face or figure can be made out."""
    left, top, right, bottom = pixel_box(image.size, bbox)
    if right <= left or bottom <= top:
        return image
    region = image.crop((left, top, right, bottom))
    radius = max(8, max(region.size) // 6)
    small = region.resize((max(1, region.width // 16), max(1, region.height // 16)), Image.BILINEAR)
    hidden = small.resize(region.size, Image.BILINEAR).filter(ImageFilter.GaussianBlur(radius))
    out = image.copy()
    out.paste(hidden, (left, top))
    return out


def _label(draw: ImageDraw.ImageDraw, corner: tuple[int, int], text: str, colour: tuple, font) -> None:
    left, top = corner
    box = draw.textbbox((left, top), text, font=font)
    height = box[3] - box[1]
    y = top - height - 6 if top - height - 6 >= 0 else top  # above the box, or inside it at the top
    draw.rectangle((left, y, left + box[2] - box[0] + 8, y + height + 6), fill=colour)
    draw.text((left + 4, y + 2 - (box[1] - top)), text, fill=(0, 0, 0), font=font)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the bitmap font, one size
        return ImageFont.load_default()

"""`classifier.results.review`: the queue, corrections, undo, progress, photos found by path, reload and exports."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from classifier.results.review import (
    BLANK_FRAME,
    BLANK_IN_SEQUENCE,
    NOT_SURE,
    REVIEWED,
    SPOT_CHECK,
    UNREADABLE,
    Photos,
    Review,
    ReviewError,
    boxes_to_draw,
    clean_label,
    deployments_from_table,
    drawn,
)
from classifier.schema.predictions_file import ExportError, parse_predictions
from review_rows import ANIMAL_BOX, PERSON_BOX, batch_rows, csv_text, json_text, photo_bytes, photo_zip

ODD = 'gazelle, "Thomson\'s"'  # a label with a comma, double quotes and an apostrophe
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def review_of(rows, **options) -> Review:
    return Review([r for r in rows], classes=("blue", "green", "red"), **options)


def test_the_queue_holds_what_needs_a_person_in_file_order():
    review = review_of(batch_rows(20), share=0.0)
    assert review.queue == [1, 2, 5, 6, 9, 10, 13, 14, 17, 18]
    assert [review.reason(i) for i in review.queue[:4]] == [
        NOT_SURE,
        BLANK_IN_SEQUENCE,
        UNREADABLE,
        BLANK_IN_SEQUENCE,
    ]
    assert review.progress() == (0, 10)


def test_sure_blanks_only_when_asked_and_spot_checks_are_a_stable_share():
    rows = batch_rows(8, folder="a")
    rows[0].label, rows[0].observation_type, rows[0].detections = "blank", "blank", ()  # a sure blank
    review = review_of(rows, share=1.0)
    assert 0 not in review.queue  # blanks left out of the spot checks
    review.set_options(include_blanks=True)
    assert review.reason(0) == BLANK_FRAME
    # The draw is a hash of the path and the seed: the same photos whatever the other rows are.
    many = review_of(batch_rows(2000), share=0.05)
    spot = [i for i in many.queue if many.reason(i) == SPOT_CHECK]
    sure = [i for i, r in enumerate(many.records) if r.status == "ok"]
    assert 0.03 < len(spot) / len(sure) < 0.07
    assert all(drawn(many.records[i].path) < 0.05 for i in spot)
    fewer = review_of(batch_rows(2000)[::2], share=0.05)
    assert {fewer.records[i].path for i in fewer.queue if fewer.reason(i) == SPOT_CHECK} == {
        many.records[i].path for i in spot if i % 2 == 0
    }
    assert review_of(batch_rows(2000), share=0.05, seed=1).queue != many.queue


def test_relabel_records_who_how_and_when_and_keeps_the_models_record():
    review = review_of(batch_rows(8), share=0.0)
    before = review.records[1]
    assert review.relabel(1, " green ", by="A. Ranger", at=WHEN) == [1]
    after = review.records[1]
    assert (after.label, after.observation_type, after.classification_method) == ("green", "animal", "human")
    assert (after.classified_by, after.classified_at) == ("A. Ranger", WHEN)
    assert (after.status, after.confidence, after.top_k, after.detections) == (
        before.status, before.confidence, before.top_k, before.detections
    )  # fmt: skip
    assert review.progress() == (1, 4)
    review.relabel(2, "red", by="")  # a blank frame was an animal after all; no name: the default
    assert (review.records[2].observation_type, review.records[2].count) == ("animal", None)
    assert review.records[2].classified_by == "reviewer"
    assert review.records[2].classified_at.tzinfo is not None
    for label, kind in (
        ("Blank", "blank"),
        ("unknown", "unknown"),
        ("person", "human"),
        ("vehicle", "vehicle"),
    ):
        review.relabel(6, label)
        assert review.records[6].observation_type == kind


@pytest.mark.parametrize(
    ("typed", "message"),
    [("", "Type a label"), ("   ", "Type a label"), ("zebra\nlion", "one line"), ("x" * 101, "at most 100")],
)
def test_a_label_that_cannot_be_used_is_refused_in_one_line(typed, message):
    with pytest.raises(ReviewError, match=message):
        clean_label(typed)
    review = review_of(batch_rows(4), share=0.0)
    with pytest.raises(ReviewError):
        review.relabel(1, typed)
    assert not review.can_undo and review.progress() == (0, 2)


def test_a_sequence_is_relabelled_at_once_and_undone_at_once():
    review = review_of(batch_rows(12), share=0.0)
    assert review.sequence(9) == [8, 9, 10, 11]
    assert review.relabel(9, ODD, by="me", whole_sequence=True) == [8, 9, 10, 11]
    assert {review.records[i].label for i in (8, 9, 10, 11)} == {ODD}
    assert review.queue == [1, 2, 5, 6, 8, 9, 10, 11]  # the sure frames corrected with it joined the queue
    assert review.reason(8) == REVIEWED and review.progress() == (4, 8)
    assert ODD in review.labels()  # a typed name becomes a one-click choice
    review.relabel(1, "green")
    assert review.undo() == [1] and review.undo() == [8, 9, 10, 11]
    assert [r.label for r in review.records] == [r.label for r in review_of(batch_rows(12)).records]
    assert review.progress() == (0, 6) and not review.can_undo and review.undo() == []
    assert review.sequence(5) == [5]  # an unreadable photo has no sequence


def test_next_to_review_walks_the_queue_and_wraps_round():
    review = review_of(batch_rows(12), share=0.0)
    assert review.next_to_review() == 1
    review.relabel(1, "red")
    assert review.next_to_review(1) == 2 and review.next_to_review(9) == 10
    assert review.next_to_review(10) == 2  # back to the first still to review
    assert review.neighbour(10, 1) == 1 and review.neighbour(1, -1) == 10
    for index in review.queue:
        review.relabel(index, "red")
    assert review.next_to_review() is None


def test_the_labels_offered_are_the_models_then_the_typed_ones_without_blank_and_unknown():
    review = Review([r for r in batch_rows(4)], classes=("zebra", "blank", "human"))
    assert review.labels() == ["zebra", "human"]
    no_model = Review([r for r in batch_rows(8)])
    assert no_model.labels() == ["blue", "green", "red"]  # what the file holds, its guesses too
    assert no_model.model_name == "tiny"


@pytest.mark.parametrize("write", [csv_text, json_text])
def test_a_saved_review_reloads_where_it_stopped(write):
    rows = batch_rows(20)
    review = Review.from_file(write(rows), name="labels", share=0.0)
    review.relabel(1, ODD, by="A. Ranger", at=WHEN)
    review.relabel(14, "red", by="A. Ranger", whole_sequence=True, at=WHEN)
    saved = review.to_csv()
    again = Review.from_file(saved.encode(), name="labels-reviewed.csv", share=0.0)
    assert again.queue == review.queue and again.progress() == review.progress() == (5, 12)
    assert again.records == review.records
    assert again.records[1].label == ODD and again.records[1].classified_by == "A. Ranger"
    assert again.next_to_review() == 2
    assert parse_predictions(saved, name="x").records[1].classified_at == WHEN
    again.classes = ("blue", "green", "red")  # the page gives the model's classes when it has the model
    assert again.labels() == ["blue", "green", "red", ODD]  # a name typed in the first sitting


def test_a_file_from_another_tool_is_refused_in_one_line():
    with pytest.raises(ExportError) as error:
        Review.from_file(b"filename,species\nIMG_1.JPG,zebra\n", name="other.csv")
    assert "missing columns path, label, confidence, status" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(ExportError, match="has no rows"):
        Review.from_file(csv_text([]), name="empty.csv")


# ------------------------------------------------------------------------------------------------ photos


def test_rows_find_their_photos_by_the_tail_of_their_path():
    photos = Photos()
    rows = batch_rows(8)
    photos.add(
        [
            ("IMG_0000.JPG", photo_bytes("blue", 0)),  # uploaded alone
            ("trap.zip", photo_zip(rows[1:3], strip="trap/")),  # the folder zipped, its name the zip's
            ("cards.zip", photo_zip(rows[3:5], strip="")),  # the folder inside the zip
            ("a.zip", photo_zip(rows[6:7], strip="trap/")),  # IMG_0006.JPG twice: ambiguous
            ("b.zip", photo_zip(rows[6:7], strip="trap/")),
        ]
    )
    assert len(photos) == 7
    found = {r.path: photos.find("/media/card/" + r.path) for r in rows}
    assert found["trap/IMG_0000.JPG"].path.endswith("/IMG_0000.JPG")
    assert found["trap/IMG_0001.JPG"].member == "IMG_0001.JPG"
    assert found["trap/IMG_0003.JPG"].member == "trap/IMG_0003.JPG"
    assert found["trap/IMG_0006.JPG"] is None  # which one? none rather than the wrong one
    assert found["trap/IMG_0007.JPG"] is None  # not uploaded
    assert photos.relative(found["trap/IMG_0003.JPG"].path) == "cards.zip/trap/IMG_0003.JPG"
    folder = photos.folder
    assert folder.is_dir()
    photos.close()
    assert not folder.exists()


def test_an_uploaded_name_cannot_leave_the_folder():
    photos = Photos()
    photos.add([("..", b"x"), ("../../evil.jpg", photo_bytes("red", 1)), ("", b"y")])
    assert sorted(p.name for p in photos.folder.iterdir()) == ["evil.jpg", "upload-0", "upload-2"]
    photos.close()


def _box_spread(jpeg: bytes, bbox) -> float:
    image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=float)
    h, w = image.shape
    x, y, bw, bh = bbox
    inside = image[
        int((y + 0.1 * bh) * h) : int((y + 0.9 * bh) * h), int((x + 0.1 * bw) * w) : int((x + 0.9 * bw) * w)
    ]
    return float(inside.std())


def test_pictures_have_boxes_and_blurred_people_and_say_why_when_missing():
    rows = batch_rows(8)
    photos = Photos()
    photos.add([("trap.zip", photo_zip(rows, strip=""))])
    review = Review([r for r in rows], photos)
    with_person, why = photos.picture(review.records[7], 240)
    plain, _ = photos.picture(review.records[4], 240)
    assert why == "" and Image.open(io.BytesIO(with_person)).size == (96, 96)  # never enlarged
    assert _box_spread(with_person, PERSON_BOX) < 0.5 * _box_spread(plain, PERSON_BOX)  # blurred
    assert photos.picture(review.records[5], 240) == (None, "photo not found among the uploaded photos")
    photos.add([("IMG_0005.JPG", b"not a photo")])
    missing, why = photos.picture(review.records[5], 240)
    assert missing is None and "not an image" in why
    frame, _ = photos.picture(review.records[2], 240)
    review.relabel(2, "human")  # a frame labelled human without a person's box: blurred whole
    blurred, _ = photos.picture(review.records[2], 240)
    assert _box_spread(blurred, (0, 0, 1, 1)) < 0.5 * _box_spread(frame, (0, 0, 1, 1))
    photos.close()


def test_boxes_show_the_reviewers_label_and_people_as_human():
    rows = batch_rows(8)
    review = Review([r for r in rows])
    review.relabel(7, "green")
    boxes = boxes_to_draw(review.records[7])
    assert [(b.bbox, b.label, b.confidence) for b in boxes] == [
        (ANIMAL_BOX, "green", None),
        (PERSON_BOX, "human", 0.9),
    ]
    assert boxes_to_draw(review.records[2]) == []  # a blank frame has no box


# ------------------------------------------------------------------------------------------------ export


def test_exports_carry_the_corrections():
    rows = batch_rows(8)
    review = Review([r for r in rows])
    review.relabel(1, "green", by="A. Ranger", at=WHEN)
    review.relabel(5, "unknown", by="A. Ranger", at=WHEN)  # an unreadable photo, looked at elsewhere
    text, warnings = review.to_megadetector()
    results = json.loads(text)
    names = results["classification_categories"]
    assert results["info"]["format_version"] == "1.6" and results["info"]["classifier"] == "tiny"
    first_box = results["images"][1]["detections"][0]
    assert [names[first_box["classifications"][0][0]], first_box["classifications"][0][1]] == ["green", 1.0]
    assert results["images"][5]["failure"] and not warnings
    table = review.deployment_table()
    assert [(t["folder"], t["photos"], t["deploymentID"]) for t in table] == [("trap", 8, "trap")]
    table[0] |= {"latitude": -2.33, "longitude": 34.83, "timezone": "+03:00", "locationName": 'Seronera, "B"'}
    data, warnings = review.to_camtrap_dp(deployments_from_table(table))
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        observations = package.read("observations.csv").decode()
        deployments = package.read("deployments.csv").decode()
    assert "A. Ranger" in observations and ",human,A. Ranger,2026-12-01T09:30:00Z" in observations
    assert '"Seronera, ""B"""' in deployments and "-2.33,34.83" in deployments
    assert any("no scientific name" in w for w in warnings)


def test_a_deployments_table_without_coordinates_is_refused_in_one_line():
    table = Review([r for r in batch_rows(4)]).deployment_table()
    table[0]["latitude"] = float("nan")
    with pytest.raises(ExportError) as error:
        deployments_from_table(table)
    assert str(error.value) == (
        "the deployments table: line 2: deployment 'trap' needs a latitude and a longitude "
        "(decimal degrees, WGS84)."
    )

"""Can you beat the model? Ten photos, four names each (the model's own mix-ups among them); after each
answer, the model's answer (the real predictor, as the classify page runs it), where it looked, and how to
tell the two apart; a running score. Questions and score: classifier/results/quiz.py.
"""

import random
from functools import partial

import streamlit as st

from app_pages.cards import SPECIES_PAGE, shown_name
from app_pages.common import (
    examples_changed,
    explaining_network,
    release_page_memory,
    require_bundle,
    require_predictor,
    species_book_or_warn,
)
from classifier.intake.images import ImageError, Photo, load_photo
from classifier.models.bundles import BundleError, read_bundle
from classifier.results.quiz import (
    Answered,
    Question,
    QuizError,
    QuizPhoto,
    make_quiz,
    quiz_photos,
    tally,
    telling_apart,
)
from classifier.schema.rows import BLANK, OK, Row

SHOWN_SIZE = 1024  # pixels: the page never shows more

bundle = require_bundle()
book = species_book_or_warn(bundle)


name = partial(shown_name, book)


@st.cache_data(show_spinner=False)
def photos_for(directory: str, changed: float) -> list[QuizPhoto]:
    return quiz_photos(read_bundle(directory))


def new_quiz() -> None:
    """A fresh quiz of this model (another draw of photos each time)."""
    st.session_state["quiz_seed"] = random.randrange(1 << 30)
    for key in ("quiz_questions", "quiz_answers", "quiz_pick", "quiz_explanation"):
        st.session_state.pop(key, None)


def pick(choice: str) -> None:
    st.session_state["quiz_pick"] = choice


def next_question(index: int) -> None:
    """From question `index`, once answered, to the next (a second click, or one on a button left from the
    question before, moves nothing)."""
    if st.session_state["quiz_index"] == index and len(st.session_state["quiz_answers"]) > index:
        st.session_state["quiz_index"] = index + 1
        st.session_state.pop("quiz_explanation", None)


st.title("Can you beat the model?")
try:
    if st.session_state.get("quiz_model") != bundle.name or "quiz_questions" not in st.session_state:
        st.session_state["quiz_model"] = bundle.name
        st.session_state.setdefault("quiz_seed", random.randrange(1 << 30))
        st.session_state["quiz_questions"] = make_quiz(
            photos_for(str(bundle.directory), examples_changed(bundle)),
            bundle.report,
            book,
            seed=st.session_state["quiz_seed"],
        )
        st.session_state["quiz_answers"] = []
        st.session_state["quiz_index"] = 0
except (QuizError, BundleError) as error:
    st.info(f"No quiz for {bundle.title}: {error}")
    st.stop()
questions: list[Question] = st.session_state["quiz_questions"]
answers: list[Answered] = st.session_state["quiz_answers"]
index: int = st.session_state["quiz_index"]
st.caption(
    f"{len(questions)} photos for {bundle.title}. Pick the right name among {len(questions[0].choices)}; then see "
    f"what the model said (it picks among all its {len(bundle.classes)} classes), where it looked, and how to "
    "tell them apart."
)

if index >= len(questions):
    score = tally(answers)
    st.subheader(score.verdict())
    st.dataframe(
        {
            "photo of": [name(a.question.answer) for a in answers],
            "you said": [name(a.picked) + (" ✓" if a.visitor_right else " ✗") for a in answers],
            "the model said": [name(a.model_label) + (" ✓" if a.model_right else " ✗") for a in answers],
        },
        hide_index=True,
    )
    st.button("Play again", key="quiz_again", on_click=new_quiz, type="primary")
    st.stop()

question = questions[index]
try:
    photo: Photo = load_photo(question.photo.path, target_size=SHOWN_SIZE)
except ImageError as error:
    st.error(f"This photo cannot be shown ({error}); skip it.")
    st.button("Next photo", key="quiz_skip", on_click=lambda: questions.pop(index))
    st.stop()
answered = answers[index] if index < len(answers) else None
if answered is None and "quiz_pick" in st.session_state:
    with st.spinner("The model is looking…"):
        row: Row = require_predictor(bundle).predict_photo(question.photo.path, name=question.photo.path.name)
    answered = Answered(question, st.session_state.pop("quiz_pick"), row.label)
    answers.append(answered)
    st.session_state["quiz_row"] = (index, row)

score = tally(answers)
st.markdown(
    f"**Score: you {score.visitor}, the model {score.model}** · {len(answers)} of {len(questions)} asked"
)
st.subheader(f"Photo {index + 1} of {len(questions)}: what is this?")
picture, panel = st.columns([3, 2])
with panel:
    for choice in question.choices:
        if answered is None:
            st.button(
                name(choice),
                key=f"quiz_choice_{index}_{choice}",
                on_click=pick,
                args=(choice,),
                width="stretch",
            )
        elif choice == question.answer:
            st.markdown(f":green-background[**{name(choice)}** ✓ the right name]")
        elif choice == answered.picked:
            st.markdown(f":red-background[{name(choice)} ✗ your pick]")
        else:
            st.markdown(f":gray[{name(choice)}]")
    if answered is not None:
        row = st.session_state["quiz_row"][1]
        st.markdown(
            "**Right!**" if answered.visitor_right else f"**Not this time.** It is: {name(question.answer)}."
        )
        verdict = "right" if answered.model_right else "wrong"
        if row.observation_type == BLANK:
            st.markdown(f"The model found no animal in it: {verdict}.")
        elif row.status == OK:
            st.markdown(f"The model said **{name(row.label)}**, {row.confidence:.0%} sure: {verdict}.")
        else:
            st.markdown(
                f"The model was not sure; its best guess, **{name(row.label)}** ({row.confidence:.0%}), is {verdict}."
            )
        cue = telling_apart(answered, book)
        if cue is not None:
            st.markdown(f"**How to tell the {name(cue[0])} from the {name(cue[1])}.** {cue[2]}")
        st.page_link(
            SPECIES_PAGE,
            label=f"About the {name(question.answer)}",
            query_params={"species": question.answer, "model": bundle.name},
        )
        last = index + 1 >= len(questions)
        st.button(
            "See the score" if last else "Next photo",
            key="quiz_next",
            on_click=next_question,
            args=(index,),
            type="primary",
        )

with picture:
    row = st.session_state["quiz_row"][1] if answered is not None else None
    if row is not None and row.observation_type != BLANK:
        from classifier.models.explain import explain, overlay

        cached = st.session_state.get("quiz_explanation")
        if cached is None or cached[0] != index:
            with st.spinner("Working out where the model looked…"):
                predictor = require_predictor(bundle)
                found = explain(predictor, photo.image, row, network=explaining_network(predictor, bundle))
            st.session_state["quiz_explanation"] = cached = (index, found)
        st.image(overlay(photo.image, cached[1].frame, max_side=SHOWN_SIZE), width="stretch")
        st.caption(
            f"Where the model looked for the {name(cached[1].frame.label)}: the brighter, the more it counted. "
            f"{question.photo.credit}"
        )
    else:
        st.image(photo.image, width="stretch", alt="The quiz photo")
        if row is not None:
            st.caption(question.photo.credit)
release_page_memory()

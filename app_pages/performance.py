"""Model performance: how well the chosen model does on images it did not train on, in plain words first
(of 100 photos of a class, how many it names right), then the measures a data scientist reads; for a
camera-trap model, its figures on frames from other parks beside its own data's."""

from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from app_pages.cards import shown_name
from app_pages.common import (
    current_threshold,
    require_bundle,
    species_book_or_warn,
    transfer_figures,
    working_bundles,
)
from classifier.results import performance

bundle = require_bundle()
report = bundle.report
threshold = current_threshold(bundle)
data = report.get("data", {})
book = species_book_or_warn(bundle)


common_name = partial(shown_name, book)


st.title(f"Model performance · {bundle.title}")
st.caption(
    f"Measured on {data.get('n_valid', '?')} images it did not train on "
    f"({data.get('split', 'held-out split')}); "
    f"trained on {data.get('n_train', '?')} images. Backbone {report.get('arch', '?')}, "
    f"{report.get('image_size')} px."
)
metrics = report.get("metrics", {})
for column, (key, label) in zip(
    st.columns(4),
    [
        ("accuracy", "Accuracy"),
        ("macro_f1", "Macro F1"),
        ("top3_accuracy", "Top-3 accuracy"),
        ("valid_loss", "Loss"),
    ],
    strict=True,
):
    value = metrics.get(key)
    column.metric(
        label, "–" if value is None else (f"{value:.3f}" if key == "valid_loss" else f"{value:.1%}")
    )

st.subheader("In plain words")
st.markdown(
    "Two questions a visitor asks, for each kind of animal (or place) the model knows:\n"
    "- **Of 100 photos of it, how many does the model name right?** Data scientists call this *recall*.\n"
    "- **Of 100 times the model gives that answer, how many are right?** This is *precision*: a model that "
    "calls everything a zebra names every zebra, but is often wrong when it says zebra.\n\n"
    f"Both are counted on {performance.measured_on(report)}: photos the model did not learn from."
)
if report.get("per_class"):
    chosen_class = st.selectbox(
        "Pick one", list(report["per_class"]), format_func=common_name, key="performance_class"
    )
    st.markdown(performance.class_in_words(report, chosen_class, common_name))
    with st.expander("Every class, of 100 photos"):
        st.dataframe(performance.in_hundreds(report, common_name), hide_index=True, width="stretch")

transfer = transfer_figures(bundle)
if transfer is not None:
    st.subheader("On camera-trap frames from other parks")
    st.markdown(
        "Photos like its training photos are the easy test. The real one is frames from cameras, places and "
        f"seasons it never saw: {transfer['frames']} labelled camera-trap frames of other projects, each project "
        "judged with settings chosen without it."
    )
    st.dataframe(
        performance.here_and_elsewhere(report, transfer, bundle.threshold), hide_index=True, width="stretch"
    )
    with st.expander("Each project"):
        st.dataframe(performance.projects_table(transfer), hide_index=True, width="stretch")
    st.caption(
        f"Measured {transfer.get('measured', '?')} by `{transfer.get('command', 'benchmarks/verdict.py')}`; "
        f"sure answers at the model's own threshold ({bundle.threshold:.2f}). {transfer.get('about', '')}"
    )

st.subheader("Confusion matrix")
st.caption(
    "Each row is the photos of one class, each column what the model called them: off the diagonal, its mix-ups."
)
normalise = st.toggle("Share of each actual class (rows add up to 100%)", key="performance_normalise")
cells = performance.confusion_long(report, normalise=normalise)
size = max(300, 18 * len(report["classes"]))
every_label = {"labelOverlap": False, "labelFontSize": 11, "labelLimit": 200}
heatmap = (
    alt.Chart(cells)
    .mark_rect()
    .encode(
        x=alt.X(
            "predicted:N",
            sort=report["classes"],
            title="predicted",
            axis=alt.Axis(**every_label, labelAngle=-60),
        ),
        y=alt.Y("actual:N", sort=report["classes"], title="actual", axis=alt.Axis(**every_label)),
        color=alt.Color(
            "value:Q", scale=alt.Scale(scheme="greens"), title="share" if normalise else "images"
        ),
        tooltip=["actual", "predicted", alt.Tooltip("value:Q", format=".0%" if normalise else "d")],
    )
    .properties(width=size, height=size)
)
st.altair_chart(heatmap, width="content")

left, right = st.columns(2)
with left:
    st.subheader("Most confused")
    confused = performance.most_confused(report)
    if confused.empty:
        st.write("No mistakes on the validation images.")
    else:
        st.dataframe(confused, hide_index=True, width="stretch")
with right:
    st.subheader("Per class (weakest first)")
    st.dataframe(
        performance.per_class(report),
        hide_index=True,
        width="stretch",
        column_config={
            name: st.column_config.NumberColumn(format="%.2f") for name in ("precision", "recall", "f1")
        },
    )

st.subheader("Auto-labelling: coverage and accuracy per confidence cut-off")
curve = performance.threshold_curve(report)
if curve.empty:
    st.info("This report has no threshold curve.")
else:
    lines = curve.melt("threshold", ["coverage", "accuracy"], var_name="measure", value_name="share")
    chart = (
        alt.Chart(lines)
        .mark_line()
        .encode(x="threshold:Q", y=alt.Y("share:Q", scale=alt.Scale(domain=[0, 1])), color="measure:N")
    )
    marker = (
        alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        .mark_rule(strokeDash=[4, 4])
        .encode(x="threshold:Q")
    )
    st.altair_chart(chart + marker, width="stretch")
    point = performance.at_threshold(report, threshold)
    if point:
        st.write(
            f"At the sidebar's threshold {threshold:.2f} the model labels "
            f"**{point['coverage']:.0%}** of photos on its own, "
            f"**{point['accuracy']:.0%}** of them correctly; the rest go to a person."
        )

st.subheader("Training curves")
epochs = performance.history(report)
if epochs.empty:
    st.info("This report has no training history (it was made by `python -m classifier evaluate`).")
else:
    losses = epochs.melt(["step", "stage"], ["train_loss", "valid_loss"], var_name="loss", value_name="value")
    st.altair_chart(
        alt.Chart(losses)
        .mark_line(point=True)
        .encode(x="step:Q", y="value:Q", color="loss:N", shape="stage:N"),
        width="stretch",
    )
    st.line_chart(epochs, x="step", y=[c for c in ("accuracy", "macro_f1") if c in epochs])

st.subheader("Biggest mistakes")
losses = performance.top_loss_images(report)
if not losses:
    st.caption("The images of the top losses are shown when the training data is on this disk.")
else:
    columns = st.columns(4)
    for index, loss in enumerate(losses[:12]):
        columns[index % 4].image(
            str(loss["path"]),
            caption=f"actual {loss['actual']} · predicted {loss['predicted']} ({loss['probability']:.0%})",
        )

st.subheader("Compare with another model")
base_note = performance.base_caption(report)
if base_note:
    st.markdown(base_note)
    against_base = performance.base_comparison(report)
    if against_base is not None:
        st.dataframe(against_base, width="stretch")
        st.dataframe(
            performance.base_per_class(report),
            hide_index=True,
            width="stretch",
            column_config={
                name: st.column_config.NumberColumn(format="%.2f")
                for name in ("base_recall", "recall", "base_f1", "f1", "f1_change")
            },
        )
others = [b for b in working_bundles() if b.name != bundle.name]
if not others:
    st.caption("Only one model is available.")
else:
    chosen = st.selectbox("Other model", [b.name for b in others], key="performance_compare")
    other = next(b for b in others if b.name == chosen)
    table = performance.compare({bundle.name: report, other.name: other.report})
    if performance.same_photos(report, other.report):
        st.caption(f"Both models scored on the same {performance.measured_on(report)}.")
        st.dataframe(performance.as_text(table), width="stretch")
    else:
        st.info(
            f"These two cannot be compared on their scores: **{bundle.name}** was measured on "
            f"{performance.measured_on(report)}, **{other.name}** on {performance.measured_on(other.report)}. "
            "Different photos (and classes) make different tests: a higher score may only mean an easier test. "
            "What each model is:"
        )
        st.dataframe(performance.as_text(table.drop(index=list(performance.HEADLINE))), width="stretch")

curve = performance.learning_curve(report)
if curve is not None:
    st.subheader("Learning curve: what more review would give")
    st.caption(
        "This model was retrained on a person's review. Each point: the share of the photos a person "
        "labelled that a model fitted without them names right, when that many of the photos teach. "
        "Still climbing at the right: reviewing more photos should still help."
    )
    st.line_chart(curve, x="photos", y="accuracy")

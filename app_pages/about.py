"""About: each model's card (data, recipe, metrics, intended use, limits) and how to train your own."""

import streamlit as st

from app_pages.common import working_bundles

st.title("About the models")
st.write(
    "Every model here was trained with this project's own `python -m train` on real, labelled photos, "
    "and measured on photos it did not train on. A camera-trap model first finds each animal with an animal "
    "detector, names what is in every box, counts them, and gives the frame one answer from all of them; a "
    "model without a detector names one class for the whole photo. A model can only answer with the classes "
    "it was trained on (or, when the species notes allow, a group of them, such as 'carnivore'), so "
    "anything else should come out as 'not sure', for a person to check."
)

bundles = working_bundles()
if not bundles:
    st.info("No model bundled yet.")
for bundle in bundles:
    with st.expander(f"{bundle.title} (`{bundle.name}`)", expanded=len(bundles) == 1):
        card = bundle.directory / "README.md"
        if card.is_file():
            st.markdown(card.read_text(encoding="utf-8"))
        report = bundle.report
        metrics, versions = report.get("metrics", {}), report.get("versions", {})
        st.markdown(
            f"- **Classes:** {len(bundle.classes)}\n"
            f"- **Backbone:** {report.get('arch', '?')} at {bundle.image_size} px\n"
            f"- **Trained:** {report.get('created', '?')} with fastai {versions.get('fastai', '?')}, "
            f"torch {versions.get('torch', '?')}\n"
            f"- **Accuracy on held-out images:** {metrics.get('accuracy', float('nan')):.1%}; macro F1 "
            f"{metrics.get('macro_f1', float('nan')):.3f}\n"
            f"- **Default confidence threshold:** {bundle.threshold:.2f}"
        )

st.header("Train your own")
st.markdown(
    """
Put your labelled photos in one folder per class (or a CSV of `path,label`, a COCO Camera Traps JSON from
LILA, or iNaturalist JSON), then:

```bash
.venv/bin/python -m train --data PATH/TO/PHOTOS --name mymodel
```

It writes `models/mymodel/model.pkl` and `models/mymodel/report.json`; reload this app and pick it in the
sidebar. `python -m train --help` lists every option (backbone, image sizes, epochs, augmentation, class
balance, splits by location or sequence). Add `species_info/mymodel.yaml` for the species notes.

Batch-label photos from the command line:

```bash
.venv/bin/python -m classifier predict --model mymodel --out labels.csv PHOTOS_FOLDER_OR_ZIP
```
"""
)

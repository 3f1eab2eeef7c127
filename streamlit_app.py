"""The app's entry: navigation over the pages and the sidebar every page shares.

Run with `make run` (or `streamlit run streamlit_app.py`).
"""

import os

# Torch's threads sleep instead of spinning between operations: on a shared host (or with the page's
# other work) spinning made one prediction 10-40x slower. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st

from app_pages.common import sidebar

st.set_page_config(page_title="Wildlife classifier", page_icon="🦓", layout="wide")

navigation = st.navigation(
    [
        st.Page(
            "app_pages/classify.py", title="Classify a photo", icon=":material/photo_camera:", default=True
        ),
        st.Page("app_pages/batch.py", title="Batch-label photos", icon=":material/photo_library:"),
        st.Page("app_pages/review.py", title="Review and correct", icon=":material/fact_check:"),
        st.Page("app_pages/season.py", title="Season", icon=":material/insights:"),
        st.Page("app_pages/species.py", title="Species", icon=":material/pets:"),
        st.Page("app_pages/lookalikes.py", title="Look-alikes", icon=":material/compare:"),
        st.Page("app_pages/quiz.py", title="Can you beat the model?", icon=":material/quiz:"),
        st.Page("app_pages/performance.py", title="Model performance", icon=":material/analytics:"),
        st.Page("app_pages/about.py", title="About the models", icon=":material/info:"),
    ]
)
sidebar()
navigation.run()

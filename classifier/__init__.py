"""Wildlife image classifier: the library the app, the command line and training share (no Streamlit here)."""

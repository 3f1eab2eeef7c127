"""The Jupyter server's settings on Binder: it starts the Streamlit app and serves it at /streamlit/.

Binder's launch link (`?urlpath=streamlit/`) opens the app itself; JupyterLab's launcher shows it too.
postBuild links this file into ~/.jupyter, where the server looks for it.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

c = get_config()  # noqa: F821 (Jupyter provides get_config to its config files)
c.ServerProxy.servers = {
    "streamlit": {
        # Streamlit reads .streamlit/config.toml from its working directory: the repository, where Binder
        # starts the Jupyter server.
        "command": [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "streamlit_app.py"),
            "--server.port",
            "{port}",
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        # Fewer malloc arenas: 80 MB less kept after eight visitors (Binder gives an app 1-2 GB).
        "environment": {"MALLOC_ARENA_MAX": "2"},
        "timeout": 60,  # seconds for the server to listen; a cold Binder machine is slow to import
        "launcher_entry": {"title": "Wildlife classifier"},
    }
}

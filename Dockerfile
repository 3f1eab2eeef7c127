# The app in a container, for hosting it yourself (see docs/deployment.md):
#   docker build -t wildlife-classifier . && docker run -p 8501:8501 wildlife-classifier
FROM python:3.11-slim

# requirements.txt: the lock's exact versions with PyTorch's CPU-only wheels, a few hundred MB instead of
# several GB of CUDA libraries, and far less memory in the running app. For an NVIDIA GPU, build with
#   --build-arg REQUIREMENTS=requirements.lock (the same versions, PyPI's CUDA build of PyTorch, hashes checked)
ARG REQUIREMENTS=requirements.txt

# MALLOC_ARENA_MAX: fewer malloc arenas for the threads that serve visitors; measured, eight visitors
# switching models left the app 80 MB smaller than with glibc's default.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_ARENA_MAX=2

# A user without root rights runs the app; its number, so hosts that require non-root can check it.
RUN useradd --create-home --uid 10001 app
WORKDIR /home/app/wildlife

# The dependencies first, so a change to the code does not reinstall them.
COPY requirements.txt requirements.lock ./
COPY vendor ./vendor
RUN pip install --no-cache-dir -r "${REQUIREMENTS}" && pip install --no-cache-dir --no-deps ./vendor/megadetector-lite

COPY --chown=10001:10001 . .
USER 10001

EXPOSE 8501
# The slim image has no curl: Python asks Streamlit's health endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["python", "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]

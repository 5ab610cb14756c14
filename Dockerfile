# One image for the worker, the HTTP API and one-shot admin commands (production only: the
# embedded stack's Temporal dev server and the WaveSpeed emulator are not in it).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 PYTHONPATH=/app
WORKDIR /app
# Exactly the locked versions, each wheel checked against its hash: nothing is resolved at build
# time (regenerate the lock with scripts/lock.sh).
COPY requirements.lock ./
RUN pip install --require-hashes --only-binary=:all: --no-deps -r requirements.lock
# The engine's packages, run from source (no build step, so no unpinned build backend).
COPY contracts ./contracts
COPY config ./config
COPY providers ./providers
COPY blobs ./blobs
COPY ledger ./ledger
COPY domain ./domain
COPY activities ./activities
COPY workflows ./workflows
COPY studio ./studio
COPY worker.py pyproject.toml ./
RUN useradd --create-home studio && mkdir -p /data && chown studio /data
USER studio
ENV STUDIO_DATA_DIR=/data
CMD ["python", "worker.py"]

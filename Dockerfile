# One image for the worker, the HTTP API and one-shot admin commands.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY providers ./providers
COPY emulator ./emulator
COPY studio ./studio
COPY worker.py ./
RUN pip install --no-cache-dir . && useradd --create-home studio && mkdir -p /data && chown studio /data
USER studio
ENV STUDIO_DATA_DIR=/data
CMD ["python", "worker.py"]

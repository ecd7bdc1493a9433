# The worker image: `python worker.py` against TEMPORAL_ADDRESS, with the ledger in LEDGER_DSN (docker-compose.yml).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, read from pyproject.toml, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (the same package `pip install .` builds on a developer's machine).
COPY worker.py ./
COPY worker_settings.py ./
COPY telemetry.py ./
COPY workflows ./workflows
COPY activities ./activities
COPY ports ./ports
COPY starter ./starter
COPY deploy/worker ./deploy/worker
# The sandbox imports the workflow modules again for each new workflow instance; with PYTHONDONTWRITEBYTECODE set
# and /app not writable by the worker's user, they are compiled here once, or each import compiles them again.
RUN python -m compileall -q workflows
# /keys: where docker-compose.yml mounts the payload-keys volume (PR-6); a new volume takes this owner.
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app xingtu \
    && mkdir /keys && chown xingtu /keys

USER xingtu
# Without TEMPORAL_ADDRESS the worker would start an embedded dev server: in this image it must be given.
ENV TEMPORAL_ADDRESS=temporal:7233 \
    TEMPORAL_NAMESPACE=default \
    TEMPORAL_TASK_QUEUE=xingtu
CMD ["python", "worker.py"]

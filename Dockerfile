# One image for both shipyard-api and shipyard-worker; the command picks the role. It carries
# Shipyard alone: the stand-ins of sandbox/ and what only they need stay out.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/shipyard
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md alembic.ini worker.py ./
COPY api api
COPY activities activities
COPY clients clients
COPY core core
COPY migrations migrations
COPY ops ops
COPY templates templates
COPY workflows workflows
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 shipyard
USER shipyard
EXPOSE 8000
CMD ["python", "-m", "api"]

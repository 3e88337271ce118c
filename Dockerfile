# Image for the fatigue service: one image, the command chooses the role (migrate, ingest, serve ...).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY features features
COPY models models
COPY risk risk
COPY simulators simulators
COPY store store
COPY exports exports
COPY compliance compliance
COPY service service
RUN pip install . && useradd --system --uid 10001 fatigue \
    && mkdir -p /app/var/outbox && chown -R fatigue /app/var
USER fatigue
ENTRYPOINT ["fatigue"]
CMD ["--help"]

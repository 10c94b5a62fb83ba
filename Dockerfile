# gpu-risk: slim Python 3.11, non-root, `gpu-risk run`, health-checked on /livez (process alive;
# /readyz, also served as /healthz, says whether the data is fresh: for readiness probes).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY analysis ./analysis
COPY storage ./storage
RUN python -m venv /opt/gpu-risk && /opt/gpu-risk/bin/pip install ".[postgres]"

FROM python:3.11-slim
ENV PATH=/opt/gpu-risk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GPU_RISK_HTTP_HOST=0.0.0.0 \
    GPU_RISK_HTTP_PORT=3000 \
    MPLCONFIGDIR=/tmp/matplotlib
# The state defaults to sqlite:///gpu-risk.db in the working directory (/data, the volume) and the
# models live with it; set GPU_RISK_DATABASE_URL (or its _FILE / secrets-dir file) for PostgreSQL.
RUN groupadd --system --gid 10001 gpurisk \
    && useradd --system --uid 10001 --gid gpurisk --home-dir /data --create-home gpurisk
COPY --from=build /opt/gpu-risk /opt/gpu-risk
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('GPU_RISK_HTTP_PORT', '3000'), timeout=4)"]
ENTRYPOINT ["gpu-risk"]
CMD ["run"]

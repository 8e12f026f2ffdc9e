# memifd container image: `docker build -t memifd:0.1.0 .`
#
# The build stage turns the source tree into a wheel; the final stage installs
# that wheel (and its dependencies) on a clean slim Python and runs as a fixed
# non-root uid, so the sockets it creates are shared with application
# containers through the pod's fsGroup.

# The base image by digest, so a rebuild gets the same bytes; to move to a newer
# python:3.11-slim, take the digest from `docker buildx imagetools inspect python:3.11-slim`.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG MEMIFD_UID=10001
LABEL org.opencontainers.image.title="memifd" \
      org.opencontainers.image.description="memif shared-memory packet interfaces as a service" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${MEMIFD_UID}" memifd \
    && useradd --system --uid "${MEMIFD_UID}" --gid memifd --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin memifd \
    && install -d -o memifd -g memifd -m 0770 /run/memif

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/memifd-*.whl

# MEMIFD_TOKEN_FILE is where the API token is mounted (a Kubernetes Secret), not a token.
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEMIFD_HTTP_ADDR=0.0.0.0:8080 \
    MEMIFD_GRPC_ADDR=0.0.0.0:50051 \
    MEMIFD_SOCKET_DIR=/run/memif \
    MEMIFD_TOKEN_FILE=/var/run/secrets/memifd/token \
    MEMIFD_LOG_FORMAT=json

VOLUME ["/run/memif"]
EXPOSE 8080 50051
USER 10001:10001
ENTRYPOINT ["memifd"]
CMD ["serve"]

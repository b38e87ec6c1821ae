# syntax=docker/dockerfile:1
# One image for the exporter (default command), the alert relay and the simulator:
#   docker build -t comfyui-exporter .
#   docker run --rm -p 127.0.0.1:9188:9188 comfyui-exporter --comfyui-url http://host.docker.internal:8188
#   docker run --rm comfyui-exporter comfyui-alert-relay --help
# GPU metrics need the NVIDIA Container Toolkit on the host and `--gpus all` (see docs/deploy.md).
#
# Dependencies are installed with the pins in constraints.txt, so a rebuild gets the versions CI tested.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/comfyui-exporter
COPY constraints.txt pyproject.toml README.md ./
COPY exporter ./exporter
# [sim,relay]: aiohttp, jinja2, pyyaml for the alert relay and the demo simulator (a few MB).
RUN /opt/comfyui-exporter/bin/pip install --constraint constraints.txt ".[sim,relay]" \
 && /opt/comfyui-exporter/bin/pip uninstall --yes pip setuptools \
 && find /opt/comfyui-exporter -depth -name __pycache__ -type d -exec rm -rf {} + \
 && /opt/comfyui-exporter/bin/python -c "import comfyui_exporter.cli.main, comfyui_exporter.sim, comfyui_exporter.relay"

# ---------------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="comfyui-exporter" \
      org.opencontainers.image.description="Prometheus exporter, alert relay and simulator for ComfyUI" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/comfyui-exporter/comfyui-exporter"

# A fixed numeric non-root user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# /var/lib/comfyui-alert-relay is the relay's journal directory (a volume inherits this owner).
RUN groupadd --system --gid 10001 comfyui-exporter \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin comfyui-exporter \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/comfyui-alert-relay

COPY --from=build /opt/comfyui-exporter /opt/comfyui-exporter

ENV PATH=/opt/comfyui-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NVIDIA_DRIVER_CAPABILITIES=utility \
    HEALTHCHECK_URL=http://127.0.0.1:9188/-/healthy

USER 10001:10001
WORKDIR /tmp
EXPOSE 9188 9189

# /-/healthy of whatever runs in the container: the exporter on 9188 by default; the relay's service
# sets HEALTHCHECK_URL=http://127.0.0.1:9189/-/healthy. No curl in the slim image: Python's urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(0 if u.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4).status == 200 else 1)"]

CMD ["comfyui-exporter", "--listen", "0.0.0.0:9188"]

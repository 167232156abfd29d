# syntax=docker/dockerfile:1
# ds-exporter image: Node.js and the exporter, nothing else. No GPU library is baked in:
# NVML (libnvidia-ml.so.1) and nvidia-smi come from the host through the NVIDIA container
# runtime (NVIDIA_VISIBLE_DEVICES=all, NVIDIA_DRIVER_CAPABILITIES=utility).
#
#   docker build -t ds-exporter .
#   docker run --rm --runtime=nvidia --gpus all -p 9842:9842 ds-exporter
#   docker run --rm -p 9842:9842 ds-exporter --simulate      # no GPU: the whole host simulated
#
# Without Docker, `npm run image` builds the same /app into a smaller image (README: Container image).
ARG NODE_IMAGE=node:20-slim

# Build: compile TypeScript, pack exactly what `npm publish` would ship, install its
# production dependencies and prune them (scripts/image/prune.mjs, shared with `npm run image`,
# so both images carry the same /app).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# --ignore-scripts in /app: the package's own `prepare` needs the TypeScript compiler, which
# is not installed there; koffi ships prebuilt binaries and needs no install step.
RUN --mount=type=cache,target=/root/.npm \
    npm run build \
 && npm pack --ignore-scripts --pack-destination /tmp \
 && mkdir /app \
 && tar -xzf /tmp/ds-exporter-*.tgz -C /app --strip-components=1 \
 && cp package-lock.json /app/ \
 && cd /app \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && node /src/scripts/image/prune.mjs /app

# Runtime: the packed files (dist/, assets, package.json) and the pruned production
# dependencies; the npm cache stayed in a build cache mount.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/ ./
RUN chmod 0755 /app/dist/main.js \
 && ln -s /app/dist/main.js /usr/local/bin/ds-exporter
USER 65532:65532
EXPOSE 9842/tcp 9842/udp
LABEL org.opencontainers.image.title="ds-exporter" \
      org.opencontainers.image.description="Prometheus exporter for GPU hosts serving or training large models" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/ds-exporter/ds-exporter"
ENTRYPOINT ["ds-exporter"]

# herd, production image. Build: docker compose build (see docker-compose.yml).
FROM node:20-bookworm-slim AS build
# No native build: herd speaks libvirt's protocol itself (the optional kerberos addon is skipped here).
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# openssh-client: qemu+ssh:// hosts; collectd-core: types.db. test:/// hosts would need libvirt-daemon.
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client collectd-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app /app
ENV HERD_DATA_DIR=/var/lib/herd HERD_HTTP_HOST=0.0.0.0
VOLUME /var/lib/herd
EXPOSE 8080 25826/udp
ENTRYPOINT ["node", "dist/app/cli.js"]
CMD ["serve"]

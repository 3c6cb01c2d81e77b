# writ server image. Build: docker build -t writ . ; the compose file runs it.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY native ./native
COPY src ./src
COPY scripts ./scripts
COPY test ./test
COPY bin ./bin
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app /app
COPY config ./config
USER node
ENTRYPOINT ["node", "bin/writ.js"]
CMD ["server", "run", "--config", "/etc/writ/server.yaml"]

# syntax=docker/dockerfile:1
# The functions' image: one image, every function; the command picks which
# (`deepqueue serve ingest|cache|batcher|deliver`, `deepqueue reconcile`, …).
#   docker build -t ghcr.io/deepqueue/deepqueue:0.1.0 .
#   docker run --rm ghcr.io/deepqueue/deepqueue:0.1.0 serve batcher

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# TypeScript → JavaScript under build/ (tsconfig.build.json), with the profiles
# synth reads beside the compiled infra/.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/build ./build
COPY --from=build /app/bin ./bin
# bin/deepqueue.js runs build/cli/index.js when it exists (it does here).
RUN chmod 0755 bin/deepqueue.js && ln -s /app/bin/deepqueue.js /usr/local/bin/deepqueue
# The `node` user of the base image; the manifests run as the same uid with a
# read-only root filesystem.
USER 1000:1000
ENTRYPOINT ["deepqueue"]
CMD ["serve", "ingest"]

# syntax=docker/dockerfile:1
# The functions' image: one image, every function; the command picks which
# (`deepqueue serve ingest|cache|batcher|deliver`, `deepqueue reconcile`, …).
#   docker build -t ghcr.io/deepqueue/deepqueue:0.1.0 .
#   docker run --rm ghcr.io/deepqueue/deepqueue:0.1.0 serve batcher
#
# The base image is pinned by digest. This one is node:24-slim as published
# in August 2026, taken from public material, not pulled here: refresh it with
#   docker buildx imagetools inspect node:24-slim --format '{{json .Manifest.Digest}}'
# and build with --build-arg NODE_IMAGE=node:24-slim@sha256:<digest> (or edit it below).
ARG NODE_IMAGE=node:24-slim@sha256:a9f5f7c91a432850b2a8a7797adf5eadb6c733ceed61167806cee7ea7fbc29df

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Every dependency, dev ones included, to compile; this stage is thrown away.
RUN npm ci --no-audit --no-fund
COPY . .
# TypeScript → JavaScript under build/ (tsconfig.build.json), with the profiles
# and vendored schemas synth reads beside the compiled infra/.
RUN npm run build

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: no emulators (fauxqs, dynalite), no bench load
# generator, no compiler. None of them has an install script, so none runs.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/build ./build
COPY bin ./bin
# bin/deepqueue.js runs build/cli/index.js when it exists (it does here).
RUN chmod 0755 bin/deepqueue.js && ln -s /app/bin/deepqueue.js /usr/local/bin/deepqueue
# V8's compile cache, filled here with every function's modules, read at start (bin/deepqueue.js
# enables it): a cold start (Knative from zero, a KEDA activation) skips parsing and compiling them.
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
# The functions' V8 flags (functions/runtime/node-flags.ts says why): a larger young generation.
ENV NODE_OPTIONS=--max-semi-space-size=32
RUN node --input-type=module -e "import m from 'node:module'; m.enableCompileCache(); \
  for (const f of ['runtime/serve', 'runtime/http', 'ingest/handler', 'cache/handler', 'batcher/handler']) \
    await import('/app/build/functions/' + f + '.js').catch((e) => console.warn(f, e.message)); \
  m.flushCompileCache?.();" && chmod -R a+rX /app/.node-compile-cache
# The `node` user of the base image; the manifests run as the same uid with a
# read-only root filesystem.
USER 1000:1000
ENTRYPOINT ["deepqueue"]
CMD ["serve", "ingest"]

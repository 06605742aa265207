# syntax=docker/dockerfile:1
# The ScalableApp operator image.
#
#   docker build -t scalableapp/operator:dev .
#
# Two stages on the official Node.js image, Node 26 (the current LTS line):
#   build    installs every dependency and compiles TypeScript to dist/ with tsc (relative imports
#            are rewritten from .ts to .js by rewriteRelativeImportExtensions in tsconfig.json).
#   runtime  production dependencies, dist/ and crds/ only; runs as a non-root numeric user.
# package.json pins Node as an npm devDependency ("node"); `npm ci` in the build stage installs that
# binary too and npx may use it, which is fine there. The runtime stage omits dev dependencies, so
# the operator always runs on the image's own Node.
ARG NODE_IMAGE=node:26-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Sources after dependencies, so editing code does not invalidate the `npm ci` layer. .dockerignore
# keeps node_modules, dist and local state out of the context.
COPY . .
RUN npx tsc -p tsconfig.json

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# package.json is needed at run time as well: its "type": "module" makes Node load dist/ as ES modules.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY crds ./crds
# 1000 is the image's `node` user; numeric so Kubernetes can verify runAsNonRoot.
USER 1000:1000
# Metrics and health probes.
EXPOSE 8080
ENTRYPOINT ["node", "dist/operator/main.js"]

# The service image used by docker-compose.yml. Node 20 like the machines it is developed on.
# Built in two stages: TypeScript (a dev dependency) compiles src/ into dist/ in the first; the
# second holds the production dependencies and that JavaScript, and runs it without tsx (about
# 80 MB less resident memory, see README).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY drizzle ./drizzle
COPY openapi ./openapi
USER node
EXPOSE 3000
CMD ["node", "dist/server.js"]

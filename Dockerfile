# The service image used by docker-compose.yml. Node 20 like the machines it is developed on.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY drizzle ./drizzle
COPY openapi ./openapi
USER node
EXPOSE 3000
CMD ["node", "--import", "tsx", "src/server.ts"]

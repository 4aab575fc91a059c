# Causette gateway with the first-party plugins. Redis: set REDIS_URL, else an embedded one.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 CAUSETTE_HOST=0.0.0.0 CAUSETTE_DATA=/data
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY plugins ./plugins
COPY tenants ./tenants
RUN pip install --no-cache-dir '.[fast]' $(for p in plugins/*/; do printf '%s ' "$p"; done)
VOLUME /data
EXPOSE 8080
CMD ["sh", "-c", "causette tenants apply tenants/ && exec causette serve --announce"]

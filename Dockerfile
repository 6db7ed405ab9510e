# taskservice: one image for the server (`task-cli server`), the workers and agents (`task-cli serve`),
# and on Kubernetes the Kubernetes agent (`serve --kubernetes`) and the controller (`task-cli controller`):
# the `kubernetes` and `otel` extras are in it, so that every mode of the chart runs on it.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install ".[kubernetes,otel]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /home/taskservice --create-home taskservice
COPY --from=build /install /usr/local
USER taskservice
ENV SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8080 \
    PYTHONUNBUFFERED=1
EXPOSE 8080
# A DATABASE_URL is expected in containers (the embedded PostgreSQL is for one machine).
ENTRYPOINT ["task-cli"]
# The server runs no task itself (workers do: `serve`); a flag, not WORKER_COUNT=0 in the environment,
# so that WORKER_CONCURRENCY or WORKER_COUNT given to a worker container is the only one it sees.
CMD ["--log-level", "info", "server", "--concurrency", "0"]

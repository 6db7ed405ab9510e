# taskservice: one image for the server (`task-cli server`) and the workers (`task-cli serve`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /home/taskservice --create-home taskservice
COPY --from=build /install /usr/local
USER taskservice
ENV SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8080 \
    WORKER_COUNT=0 \
    PYTHONUNBUFFERED=1
EXPOSE 8080
# A DATABASE_URL is expected in containers (the embedded PostgreSQL is for one machine).
ENTRYPOINT ["task-cli"]
CMD ["--log-level", "info", "server"]

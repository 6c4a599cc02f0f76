FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/bot.db

RUN useradd --create-home --uid 10001 bot \
    && mkdir /data && chown bot:bot /data

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY bot ./bot
COPY adapters ./adapters
COPY launcher ./launcher
COPY migrations ./migrations
RUN pip install -c constraints.txt .

USER bot
VOLUME ["/data"]
EXPOSE 3000
ENTRYPOINT ["python", "-m", "bot"]

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

# The bot runs without docstrings or assertions and with bytecode compiled here, at build
# time, without column tables (tracebacks lose only their ^^^ markers): about 6 MiB less
# resident memory (bench/memory.py). /app's folders shadow the installed copy for
# `python -m bot`, so they are compiled too.
ENV PYTHONOPTIMIZE=2 \
    PYTHONNODEBUGRANGES=1
RUN python -m compileall -q -j0 -x '/(tests?|idle_test)/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
        bot adapters launcher migrations

USER bot
VOLUME ["/data"]
EXPOSE 3000
ENTRYPOINT ["python", "-m", "bot"]

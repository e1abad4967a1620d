# One image for Rasa, the action server and the dashboard (same Python 3.10 environment).
FROM python:3.10-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
ENV PYTHONPATH=/app HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Not root: a compromised process owns only its caches and the outbox (volumes start with these owners).
RUN useradd --create-home --uid 10001 toneline \
    && mkdir -p /cache /var/lib/toneline/outbox \
    && chown -R toneline /cache /var/lib/toneline
USER toneline

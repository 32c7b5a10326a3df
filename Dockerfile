FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LITELLM_LOCAL_MODEL_COST_MAP=True
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DEBUG=true python manage.py collectstatic --no-input --verbosity 0
RUN useradd --create-home flownova && mkdir -p /app/.flownova /var/lib/flownova/metrics \
    && chown flownova /app/.flownova /var/lib/flownova/metrics
USER flownova
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "flownova.asgi:application"]

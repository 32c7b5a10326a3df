# The canvas bundle (React Flow editor and run view) is built from frontend/ in a Node stage; the Python
# image only receives static/dist/.
FROM node:20-slim AS frontend
WORKDIR /app/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY frontend/ ./
RUN npm run build -- --quiet

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LITELLM_LOCAL_MODEL_COST_MAP=True
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
COPY --from=frontend /app/static/dist/ /app/static/dist/
# Collected as production serves them (DEBUG off: hashed names and a manifest); the keys are throwaway values
# that only let settings load for this one command.
RUN DEBUG=false SECRET_KEY=collectstatic-only \
    FLOWNOVA_SECRET_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --no-input --verbosity 0
RUN useradd --create-home flownova && mkdir -p /app/.flownova /var/lib/flownova/metrics \
    && chown flownova /app/.flownova /var/lib/flownova/metrics
USER flownova
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "flownova.asgi:application"]

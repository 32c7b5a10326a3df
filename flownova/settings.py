"""FlowNova settings, read from the environment with working local defaults.

Every variable users rely on is listed in docs/CONTRACT.md, Settings. Production means
`DEBUG` off: then `SECRET_KEY` and `FLOWNOVA_SECRET_KEYS` have no defaults and the process refuses to start.

Each setting is defined once, in the section of its topic: Django core, database, cache and channels, auth and
login, REST API, Celery, engine, tools and egress, LLM, logging, metrics.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialWithJitterBackoff

from flownova.llm_config import llm_server_parse

# Django's generic classes (ModelAdmin, ModelForm...) accept the type parameters django-stubs gives them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str:
    """A rate as DRF writes them ("60/min", "1000/hour", "5/s"); empty means no limit."""
    rate = os.environ.get(name, default).strip()
    count, _, period = rate.partition("/")
    if rate and not (count.isdigit() and period in {"s", "sec", "m", "min", "h", "hour", "d", "day"}):
        raise ImproperlyConfigured(f'{name}={rate!r} is not a rate like "60/min" (per s, min, hour or day)')
    return rate


# --- Django core ------------------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. It is required when DEBUG is off; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "flownova",
    "projects",
    "workflows",
    "runs",
    "tools",
    "approvals",
    "triggers",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a refused login into the lockout page
]

ROOT_URLCONF = "flownova.urls"
ASGI_APPLICATION = "flownova.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Bodies larger than this are refused before any view parses them.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("FLOWNOVA_MAX_BODY_BYTES", 2 * 1024 * 1024)

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Database -----------------------------------------------------------------------------------------------------

# The local PostgreSQL on this machine accepts the `postgres` role without a password (trust auth).
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flownova")
# Connections persist for a minute. No health check query before each reuse (it would cost every node task a
# round trip): a connection that broke is dropped after its first error, by close_old_connections() at the
# next request or task.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 5)
# The engine's lock and write statements are bound on the server, and psycopg prepares each on a connection after
# this many executions (the ORM's queries are bound on the client and never prepared). "off" turns preparing off,
# for a pooler that cannot keep prepared statements per client (PgBouncer in transaction mode before 1.21).
_prepare = os.environ.get("FLOWNOVA_DB_PREPARE_THRESHOLD", "5").strip().lower()
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
    None if _prepare in ("off", "none") else env_int("FLOWNOVA_DB_PREPARE_THRESHOLD", 5)
)
# A pool of connections, for the web process: flownova.serve (daphne) sets FLOWNOVA_DB_POOL_SIZE. Django under
# ASGI runs each request's database work in a thread made for that request, so a persistent connection stays
# open in a thread that is gone, one per request in flight, until PostgreSQL refuses new clients. With the pool,
# a request takes a connection, checked first (so a restart of PostgreSQL costs no request), and gives it back
# when it ends; past the pool's size, a request waits for one up to FLOWNOVA_DB_POOL_TIMEOUT seconds. The worker
# and the beat process keep persistent connections (one per process).
FLOWNOVA_DB_POOL_SIZE = env_int("FLOWNOVA_DB_POOL_SIZE", 0)
if FLOWNOVA_DB_POOL_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": FLOWNOVA_DB_POOL_SIZE,
        "timeout": env_float("FLOWNOVA_DB_POOL_TIMEOUT", 10),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and channels -----------------------------------------------------------------------------------------

# One Redis for the Celery broker and results, the Channels layer and the cache.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Redis, so that rate limits hold across every web process.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "flownova",
    }
}

# Every WebSocket consumer waits for its messages in a blocking BZPOPMIN of 5 s (channels-redis's
# brpop_timeout); redis-py's default read timeout is also 5 s, so an idle socket's read often timed out just as
# Redis answered "nothing yet" and the consumer died (the socket closed with 1011 after ~5 s of quiet). Reads
# wait longer than the blocking pop. A pooled connection unused for a while is checked with a PING first, and
# one that broke (Redis restarted) is reconnected and the command retried instead of failing once.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": 15,
                    "socket_connect_timeout": 5,
                    "socket_keepalive": True,
                    "health_check_interval": 30,
                    "retry": RedisRetry(ExponentialWithJitterBackoff(base=0.1, cap=2), retries=3),
                }
            ],
            "prefix": "flownova:asgi",
            "capacity": 1000,
            "expiry": 60,
        },
    }
}

# Live events are sent by a background thread in each process (runs/writes/publish.py). It waits this many
# milliseconds after a transition commits before sending, so that what other transitions commit meanwhile goes
# out together: each sending wakes the thread and asks Redis who watches, about a millisecond of the process's
# CPU, which a worker continuing a chain would otherwise pay at every node. 0 sends each transition's at once.
FLOWNOVA_EVENTS_GATHER_MS = env_int("FLOWNOVA_EVENTS_GATHER_MS", 10)

# --- Auth and login -----------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The axes backend only refuses locked-out logins; ModelBackend still checks the password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

# The pages have their own login (templates/, flownova/page_urls.py); the admin keeps its own at /admin/login/.
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# Login lockout (django-axes, flownova/login_lockout.py). Failed logins on /login/, /admin/login/ and
# POST /api/auth/token/ are counted per account and per address, each on its own; past the limit, logging in is
# refused (429) until the cool-off has passed since the last attempt.
AXES_FAILURE_LIMIT = env_int("FLOWNOVA_LOGIN_FAILURE_LIMIT", 5)
AXES_ENABLED = AXES_FAILURE_LIMIT != 0  # 0: no lockout (logins are checked elsewhere, a single sign-on say)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("FLOWNOVA_LOGIN_COOLOFF_SECONDS", 15 * 60))
if AXES_FAILURE_LIMIT < 0 or AXES_COOLOFF_TIME.total_seconds() < 1:
    raise ImproperlyConfigured(
        "FLOWNOVA_LOGIN_FAILURE_LIMIT must be 0 (no lockout) or more, and FLOWNOVA_LOGIN_COOLOFF_SECONDS 1 or more"
    )
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Behind FLOWNOVA_NUM_PROXIES proxies, the address is read from X-Forwarded-For as the API's throttles read it.
AXES_CLIENT_IP_CALLABLE = "flownova.login_lockout.client_address"
AXES_USERNAME_CALLABLE = "flownova.login_lockout.attempted_username"
AXES_LOCKOUT_CALLABLE = "flownova.login_lockout.locked_out_response"
# A success does not clear the failures: it would let someone with an account of their own clear their address's
# count between guesses at another account.
AXES_RESET_ON_SUCCESS = False
# Only failures are kept (admin: Axes > Access attempts, where deleting one unlocks); no row per successful login.
AXES_DISABLE_ACCESS_LOG = True

# --- REST API (flownova/api_*.py; docs/CONTRACT.md, REST API) ---------------------------------------------------

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header is what makes an unauthenticated request a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "flownova.api_auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "flownova.api_base.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON only: the one parser that enforces the body size limit and refuses what PostgreSQL can't store.
    "DEFAULT_PARSER_CLASSES": ["flownova.api_parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "flownova.api_errors.api_exception_handler",
    # How many proxies in front of the web process set X-Forwarded-For; 0 trusts only the connection's address,
    # so a client can't dodge the per-address token rate limit by sending the header itself.
    "NUM_PROXIES": env_int("FLOWNOVA_NUM_PROXIES", 0),
}
# JSON bodies nested deeper than this are refused with 400.
FLOWNOVA_API_MAX_JSON_DEPTH = env_int("FLOWNOVA_API_MAX_JSON_DEPTH", 64)
# Counted in the default cache, per user for run starts (API starts and re-runs), per address for tokens.
FLOWNOVA_RUN_START_RATE = env_rate("FLOWNOVA_RUN_START_RATE", "60/min")
FLOWNOVA_AUTH_TOKEN_RATE = env_rate("FLOWNOVA_AUTH_TOKEN_RATE", "30/min")
# Previews of a transform expression (POST /api/nodes/transform/preview/), per user.
FLOWNOVA_TRANSFORM_PREVIEW_RATE = env_rate("FLOWNOVA_TRANSFORM_PREVIEW_RATE", "120/min")

# --- Triggers (triggers/) -----------------------------------------------------------------------------------------

# Calls of one webhook accepted per period, unless the trigger sets its own `rate_limit` ("" for no limit).
FLOWNOVA_WEBHOOK_RATE = env_rate("FLOWNOVA_WEBHOOK_RATE", "600/min")
# A webhook body larger than this is refused with 413.
FLOWNOVA_WEBHOOK_MAX_BYTES = env_int("FLOWNOVA_WEBHOOK_MAX_BYTES", 1024 * 1024)
# A signed call's timestamp may be this far from the server's clock; a signature is accepted once in that time.
FLOWNOVA_WEBHOOK_SIGNATURE_TOLERANCE_SECONDS = env_int("FLOWNOVA_WEBHOOK_SIGNATURE_TOLERANCE_SECONDS", 300)
# The longest `?wait=` a webhook call may ask for.
FLOWNOVA_WEBHOOK_MAX_WAIT_SECONDS = env_int("FLOWNOVA_WEBHOOK_MAX_WAIT_SECONDS", 30)
# A repeated Idempotency-Key within this many hours returns the first call's run.
FLOWNOVA_IDEMPOTENCY_HOURS = env_int("FLOWNOVA_IDEMPOTENCY_HOURS", 24)
# A schedule's tick later than this (the scheduler was down) is a catch-up, which a schedule may skip.
FLOWNOVA_SCHEDULE_GRACE_SECONDS = env_int("FLOWNOVA_SCHEDULE_GRACE_SECONDS", 60)
# How many ticks of an "overlap: queue" schedule may wait for its active run; later ones are skipped.
FLOWNOVA_SCHEDULE_QUEUE_MAX = env_int("FLOWNOVA_SCHEDULE_QUEUE_MAX", 10)
# How long a trigger's firings are kept (its history page and API).
FLOWNOVA_TRIGGER_HISTORY_DAYS = env_int("FLOWNOVA_TRIGGER_HISTORY_DAYS", 14)

SPECTACULAR_SETTINGS = {
    "TITLE": "FlowNova API",
    "DESCRIPTION": (
        "Workflows, runs, approvals and tools. Authenticate with `Authorization: Token <key>` "
        "(POST /api/auth/token/) or the session cookie. Every error is JSON with a `detail`."
    ),
    "VERSION": "1",
    # Request bodies get their own components, without the read-only fields (which the API refuses).
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "flownova.api_base.add_error_responses",
    ],
    # Swagger UI and ReDoc served from our own static files (drf-spectacular-sidecar), not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -------------------------------------------------------------------------------------------------------

# The longest task is one node execution; its hard limit bounds every task, and the Redis visibility
# timeout (after which an unacknowledged message is handed to another worker) must exceed it, or a
# long node would be delivered twice while it is still running.
FLOWNOVA_TASK_SOFT_TIME_LIMIT = env_int("FLOWNOVA_TASK_SOFT_TIME_LIMIT", 300)
FLOWNOVA_TASK_TIME_LIMIT = env_int("FLOWNOVA_TASK_TIME_LIMIT", FLOWNOVA_TASK_SOFT_TIME_LIMIT + 30)
# The queue of the nodes that wait on the network (agent, tool, guardrails, cognitive: NodeType.io_bound). Its own
# worker runs them on threads (`celery -A flownova worker -Q io -P threads`, see the Procfile), so a slow model or
# tool never holds a process that short work is queued behind. Empty: every node goes to the default queue.
FLOWNOVA_IO_QUEUE = os.environ.get("FLOWNOVA_IO_QUEUE", "io").strip()
CELERY_TASK_SOFT_TIME_LIMIT = FLOWNOVA_TASK_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = FLOWNOVA_TASK_TIME_LIMIT
CELERY_BROKER_VISIBILITY_TIMEOUT = env_int("FLOWNOVA_VISIBILITY_TIMEOUT", max(3600, 2 * FLOWNOVA_TASK_TIME_LIMIT))
if CELERY_BROKER_VISIBILITY_TIMEOUT <= FLOWNOVA_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"FLOWNOVA_VISIBILITY_TIMEOUT ({CELERY_BROKER_VISIBILITY_TIMEOUT}s) must be longer than "
        f"FLOWNOVA_TASK_TIME_LIMIT ({FLOWNOVA_TASK_TIME_LIMIT}s)"
    )
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A broker outage (Redis restarted or unreachable for a while) is waited out, never fatal: the worker retries
# connecting forever, at startup as after a loss (every 2 s, then 4, 6 ... up to 30 s between attempts). Sockets
# have timeouts so a Redis that stopped answering is noticed, and an idle pooled connection is checked first.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": 5,
    "socket_timeout": 30,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 5
CELERY_REDIS_SOCKET_TIMEOUT = 30
# Off by default: each task would publish three events. Flower switches them on in the workers it watches.
CELERY_WORKER_SEND_TASK_EVENTS = False
# The worker logs through LOGGING (below) instead of replacing it with Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "recover-stalled-nodes": {"task": "runs.recover_stalled", "schedule": 60.0},
    "expire-overdue-approvals": {"task": "approvals.expire_overdue", "schedule": 30.0},
    "prune-trigger-history": {"task": "triggers.prune", "schedule": 3600.0},
}
# Celery's persistent scheduler, which also fires schedule triggers (docs/decisions/0008).
CELERY_BEAT_SCHEDULER = "triggers.beat:TriggerScheduler"

# --- Engine -------------------------------------------------------------------------------------------------------

# Extra node type modules to import at start (each registers its NodeType); comma-separated.
FLOWNOVA_NODE_MODULES = env_list("FLOWNOVA_NODE_MODULES")
# Backoff between attempts of a node that failed transiently: base x 2^(attempt-1), capped.
FLOWNOVA_RETRY_BACKOFF_SECONDS = env_float("FLOWNOVA_RETRY_BACKOFF_SECONDS", 1)
FLOWNOVA_RETRY_BACKOFF_MAX_SECONDS = env_float("FLOWNOVA_RETRY_BACKOFF_MAX_SECONDS", 300)
# Size caps on what runs produce (a template can copy a value many times over); past one, the node fails
# with a message naming the setting. A node's output (its input and its own fields), a run's output, and a
# value a template renders to.
FLOWNOVA_MAX_NODE_OUTPUT_BYTES = env_int("FLOWNOVA_MAX_NODE_OUTPUT_BYTES", 8 * 1024 * 1024)
FLOWNOVA_MAX_RUN_OUTPUT_BYTES = env_int("FLOWNOVA_MAX_RUN_OUTPUT_BYTES", 8 * 1024 * 1024)
FLOWNOVA_MAX_RENDERED_BYTES = env_int("FLOWNOVA_MAX_RENDERED_BYTES", 1024 * 1024)
# Bounds on one evaluation of a transform node's JSONata expression (and of its preview): past either, the
# node fails with a message naming the setting.
FLOWNOVA_TRANSFORM_TIMEOUT_MS = env_int("FLOWNOVA_TRANSFORM_TIMEOUT_MS", 1000)
FLOWNOVA_TRANSFORM_MAX_DEPTH = env_int("FLOWNOVA_TRANSFORM_MAX_DEPTH", 500)
# How deep child runs of subworkflow nodes may nest: a run whose chain of parents is this long cannot start
# another child run (the node fails naming the setting).
FLOWNOVA_SUBWORKFLOW_MAX_DEPTH = env_int("FLOWNOVA_SUBWORKFLOW_MAX_DEPTH", 5)
# The longest list a map node runs its workflow over: a longer one fails the node, naming the setting.
FLOWNOVA_MAP_MAX_ITEMS = env_int("FLOWNOVA_MAP_MAX_ITEMS", 1000)
# How long a worker keeps trying to record a node's result while PostgreSQL cannot be reached (a restart or a
# failover), before leaving the node to the recovery sweep: recording late beats executing the node again.
FLOWNOVA_RECORD_PATIENCE_SECONDS = env_float("FLOWNOVA_RECORD_PATIENCE_SECONDS", 60)
# Recovery of lost task messages (runs.recover_stalled, every minute under Celery beat): a node queued for
# longer than this is dispatched again; so is a node running this long past its own time limit.
FLOWNOVA_RECOVER_QUEUED_AFTER = env_int("FLOWNOVA_RECOVER_QUEUED_AFTER", 300)
FLOWNOVA_RECOVER_RUNNING_GRACE = env_int("FLOWNOVA_RECOVER_RUNNING_GRACE", 60)
# A node a process took on to begin itself (continuing a run, below) and still queued this long after: that
# process died before it could, and the sweep dispatches the node.
FLOWNOVA_RECOVER_CONTINUED_AFTER = env_int("FLOWNOVA_RECOVER_CONTINUED_AFTER", 15)
# Continuing a run: once a transition commits, the process that made it begins the instant nodes it queued
# (control flow) itself, a committed transition at a time, instead of a trip through the broker for each; for
# at most this many milliseconds and nodes per task (or request), so one long run cannot hold a worker process
# while others wait. 0 turns it off: every node then goes through the broker.
FLOWNOVA_CONTINUE_MS = env_int("FLOWNOVA_CONTINUE_MS", 50)
FLOWNOVA_CONTINUE_NODES = env_int("FLOWNOVA_CONTINUE_NODES", 200)

# --- Tools and egress (tools/) ------------------------------------------------------------------------------------

# Fernet keys for the tools' secret headers at rest, newest first (tools/secrets.py).
FLOWNOVA_SECRET_KEYS = env_list("FLOWNOVA_SECRET_KEYS")
if not FLOWNOVA_SECRET_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "FLOWNOVA_SECRET_KEYS is not set. It is required when DEBUG is off: a comma-separated list of Fernet "
        "keys, newest first (generate one with `python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'`)."
    )
# Every outbound HTTP call of the product goes through tools.egress with these bounds. Private addresses are
# refused unless a host, address or network here admits them.
FLOWNOVA_EGRESS_ALLOWLIST = env_list("FLOWNOVA_EGRESS_ALLOWLIST")
FLOWNOVA_EGRESS_CONNECT_TIMEOUT = env_float("FLOWNOVA_EGRESS_CONNECT_TIMEOUT", 5.0)
FLOWNOVA_EGRESS_READ_TIMEOUT = env_float("FLOWNOVA_EGRESS_READ_TIMEOUT", 30.0)
# A bound on one call as a whole (every retry, redirect and slow-dripping body included).
FLOWNOVA_EGRESS_TOTAL_TIMEOUT = env_float("FLOWNOVA_EGRESS_TOTAL_TIMEOUT", 120.0)
FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES = env_int("FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES", 5 * 1024 * 1024)
FLOWNOVA_EGRESS_MAX_REDIRECTS = env_int("FLOWNOVA_EGRESS_MAX_REDIRECTS", 5)
FLOWNOVA_EGRESS_RETRIES = env_int("FLOWNOVA_EGRESS_RETRIES", 2)
FLOWNOVA_EGRESS_BACKOFF_SECONDS = env_float("FLOWNOVA_EGRESS_BACKOFF_SECONDS", 0.5)
FLOWNOVA_EGRESS_RETRY_AFTER_MAX_SECONDS = env_float("FLOWNOVA_EGRESS_RETRY_AFTER_MAX_SECONDS", 10.0)
# PEM file of the certificate authorities https tools are verified against; empty: the certifi bundle.
FLOWNOVA_EGRESS_CA_BUNDLE = os.environ.get("FLOWNOVA_EGRESS_CA_BUNDLE", "")
# How much of each tool response is kept in ToolCall rows and the ledger (characters).
FLOWNOVA_TOOL_RESPONSE_RECORD_CHARS = env_int("FLOWNOVA_TOOL_RESPONSE_RECORD_CHARS", 4096)

# --- LLM (runs/llm.py) --------------------------------------------------------------------------------------------

# Any OpenAI-compatible server, with its key and default model, in one variable (flownova/llm_config.py);
# other providers' keys are read by LiteLLM from its own variables.
try:
    FLOWNOVA_LLM_SERVER = llm_server_parse(os.environ.get("FLOWNOVA_LLM_URL", ""))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# The model of nodes that name none: this variable, else the one FLOWNOVA_LLM_URL names.
FLOWNOVA_DEFAULT_MODEL = (
    os.environ.get("FLOWNOVA_DEFAULT_MODEL")
    or (FLOWNOVA_LLM_SERVER.model if FLOWNOVA_LLM_SERVER else None)
    or "openai/gpt-4o-mini"
)
# Seconds per call, retries on transient provider errors (rate limits, 5xx, timeouts) with exponential backoff,
# and how often streamed text is sent to the browser.
FLOWNOVA_LLM_TIMEOUT = env_float("FLOWNOVA_LLM_TIMEOUT", 60)
FLOWNOVA_LLM_RETRIES = env_int("FLOWNOVA_LLM_RETRIES", 2)
FLOWNOVA_LLM_BACKOFF_SECONDS = env_float("FLOWNOVA_LLM_BACKOFF_SECONDS", 1)
FLOWNOVA_LLM_TOKEN_INTERVAL = env_float("FLOWNOVA_LLM_TOKEN_INTERVAL", 0.25)

# --- Logging ------------------------------------------------------------------------------------------------------

# Logs are JSON lines (python-json-logger) carrying run_id, node_id and task_id where known; plain text is
# easier to read in a terminal, so it is the default while DEBUG is on. FLOWNOVA_LOG_FORMAT chooses.
FLOWNOVA_LOG_FORMAT = os.environ.get("FLOWNOVA_LOG_FORMAT", "plain" if DEBUG else "json")
if FLOWNOVA_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"FLOWNOVA_LOG_FORMAT={FLOWNOVA_LOG_FORMAT!r} must be plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "flownova.logcontext.ContextFilter"},
        "webhook_secrets": {"()": "flownova.logcontext.WebhookSecretFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [run=%(run_id)s node=%(node_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["asctime", "levelname", "name", "message", "run_id", "node_id", "task_id", "process"],
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": FLOWNOVA_LOG_FORMAT,
            "filters": ["context", "webhook_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default configuration gives "django" a console handler of its own (with DEBUG on), which
        # would print every record a second time, without the filters above: its records go to the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # Its warnings (a failure, a lockout) are kept; its INFO lines come with every failed login.
        "axes": {"level": "WARNING"},
    },
}

# --- Metrics and health (flownova/metrics.py, flownova/health.py) -------------------------------------------------

# /metrics answers this bearer token (what Prometheus sends); staff can always read it when signed in.
FLOWNOVA_METRICS_TOKEN = os.environ.get("FLOWNOVA_METRICS_TOKEN", "")
# How long /readyz waits for each dependency before calling it down.
FLOWNOVA_READYZ_TIMEOUT = env_float("FLOWNOVA_READYZ_TIMEOUT", 2)
# bin/start writes the time it launched its processes here; for this long after it, a worker that does not
# answer yet is "starting" in /readyz rather than missing.
FLOWNOVA_STARTED_AT_FILE = os.environ.get("FLOWNOVA_STARTED_AT_FILE") or str(BASE_DIR / ".flownova" / "started-at")
FLOWNOVA_READYZ_STARTING_SECONDS = env_float("FLOWNOVA_READYZ_STARTING_SECONDS", 120)

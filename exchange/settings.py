"""Bourse settings, read from the environment.

Without ``DATABASE_URL`` and ``REDIS_URL`` Bourse runs embedded: SQLite in WAL mode under
the data folder, kombu's SQLAlchemy transport on SQLite for Celery and a
file cache. With them set, every part switches to PostgreSQL and Redis. The README lists
every variable.
"""
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .envconfig import database_url, env_bool, env_float, env_int, env_list, fernet_keys, redis_url, secret

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("BOURSE_DATA_DIR") or BASE_DIR / "data").resolve()

DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
REDIS_URL = redis_url("REDIS_URL", os.environ.get("REDIS_URL", "").strip())
# SQLite (no DATABASE_URL, or a sqlite:/// one) is the embedded mode; anything else is production.
EMBEDDED = not DATABASE_URL or DATABASE_URL.startswith("sqlite:")

DEBUG = env_bool("DEBUG", False)
_allow_generated = env_bool("BOURSE_ALLOW_GENERATED_SECRETS", False)
SECRET_KEY = secret("SECRET_KEY", DATA_DIR, embedded=EMBEDDED, allow_generated=_allow_generated)
# Fernet keys (comma-separated, newest first) that encrypt API secrets at rest. Rotate by
# putting a new key first; older keys keep decrypting until `rotate_api_secrets` re-encrypts.
BOURSE_ENCRYPTION_KEYS = fernet_keys("BOURSE_ENCRYPTION_KEYS", env_list("BOURSE_ENCRYPTION_KEYS") or [
    secret("BOURSE_ENCRYPTION_KEYS", DATA_DIR, embedded=EMBEDDED, allow_generated=_allow_generated)
])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "audit.adminconfig.BourseAdminConfig",  # django.contrib.admin with the Bourse console site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_ratelimit",
    "channels",
    "exchange",
    "accounts",
    "apikeys",
    "trading",
    "trading.fix.apps.FixConfig",
    "audit",
]

MIDDLEWARE = [
    "exchange.middleware.MetricsMiddleware",  # outermost: the latency covers the whole stack
    "exchange.middleware.RequestIdMiddleware",
    "exchange.ratelimit.RateLimitHeadersMiddleware",
    "exchange.deprecation.DeprecationHeadersMiddleware",  # driven by docs/openapi.yaml
    "exchange.bodylimit.BodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "exchange.consolemiddleware.ConsoleSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "exchange.consolemiddleware.ConsoleCsrfViewMiddleware",
    "exchange.consolemiddleware.ConsoleAuthenticationMiddleware",
    "audit.middleware.AuditContextMiddleware",  # actor and source IP for the audit trail
    "exchange.consolemiddleware.ConsoleMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "exchange.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "exchange.urls"

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

WSGI_APPLICATION = "exchange.wsgi.application"
ASGI_APPLICATION = "exchange.asgi.application"
# No Channels layer: WebSocket fan-out goes through each process's relay (trading/ws/relay.py),
# which reads the outbox once per announcement; group_send would cost a Redis round trip per
# member (bench/ws_fanout.py measures it).
CHANNEL_LAYERS: dict = {}

# --- Database -------------------------------------------------------------------------
if not EMBEDDED:
    DATABASES = {"default": database_url("DATABASE_URL", DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    # Server-side parameters: psycopg sends values separately instead of Django quoting each
    # one into the SQL text in Python, which dominated the engine's bulk inserts.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
    # Server-side prepared statements: a statement a connection has run this many times is
    # prepared, so PostgreSQL plans it once per connection instead of on every execution (the
    # order write's plan alone took as long as running it). 0 turns them off (a transaction-
    # pooling proxy in front of PostgreSQL that cannot keep them, say).
    _prepare = env_int("DB_PREPARE_THRESHOLD", 5)
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = _prepare if _prepare > 0 else None
    # An unreachable server fails a connection attempt after this long instead of hanging.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT_S", 5))
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # Django takes a Path for SQLite's NAME (its own template does); the stubs say str only.
            "NAME": database_url("DATABASE_URL", DATABASE_URL)["NAME"] if DATABASE_URL else DATA_DIR / "bourse.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so a transaction that reads then
                # writes never fails half-way with SQLITE_BUSY; the busy timeout queues
                # writers instead of failing them; WAL lets readers run beside the writer.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": DATA_DIR / "test.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis-backed services (or their embedded equivalents) ------------------------------
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "bourse",
            # A Redis that does not answer is refused within a second or two (503, after one
            # retry), never waited on by a request thread for redis-py's default 5 s.
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
else:
    # Rate limits and the replay guard need a cache shared by all processes with atomic
    # add/incr; FileBasedCache is neither atomic nor safe for that (see exchange/sqlitecache.py).
    CACHES = {
        "default": {
            "BACKEND": "exchange.sqlitecache.SQLiteCache",
            "LOCATION": str(DATA_DIR / "cache.sqlite3"),
        }
    }
    # Celery's broker: a queue table in its own SQLite file (exchange/broker.py says why not
    # kombu's filesystem transport, which loses messages), apart from the main database so
    # queue traffic never waits on, or holds up, ledger commits.
    CELERY_BROKER_URL = f"sqlite:///{DATA_DIR / 'broker.sqlite3'}"
    CELERY_BROKER_TRANSPORT = "exchange.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "polling_interval": 0.1,  # settlement lag in the embedded mode, not a hot path
    }
CELERY_TASK_IGNORE_RESULT = True
BOURSE_RECONCILE_EVERY_S = env_int("BOURSE_RECONCILE_EVERY_S", 60)
CELERY_BEAT_SCHEDULE = {
    "settlement-sweep": {"task": "trading.settle_sweep", "schedule": env_int("BOURSE_SETTLEMENT_SWEEP_S", 10)},
    "reconcile": {"task": "trading.reconcile", "schedule": BOURSE_RECONCILE_EVERY_S},
    # Backstop to the after-commit sealer; also writes auth-failure flood summaries.
    "audit-seal": {"task": "audit.tasks.audit_seal_task", "schedule": env_int("BOURSE_AUDIT_SEAL_INTERVAL_S", 10)},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes every database connection after every task unless this is
# set; the worker's connections live like a request thread's instead (CONN_MAX_AGE, closed
# when broken: exchange/celery.py `_task_database_connections`).
CELERY_DB_REUSE_MAX = 1 << 62
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"  # `collectstatic` target, served by WhiteNoise
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production: `collectstatic` also writes gzip/brotli copies WhiteNoise sends to clients that take them.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if EMBEDDED or DEBUG
                    else "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Development and the embedded mode serve admin/docs assets straight from the apps (no
# collectstatic step); production serves only the collected set (`manage.py collectstatic`
# at each release, docs/operations.md), read once at start-up.
WHITENOISE_USE_FINDERS = env_bool("BOURSE_STATIC_FROM_APPS", EMBEDDED or DEBUG)

# --- Production hardening (docs/admin.md, "Production hardening"): all off or permissive by
# default so `make run` works over plain HTTP; set them behind TLS.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = env_bool("CSRF_COOKIE_HTTPONLY", True)  # the console's forms carry the token
SESSION_COOKIE_SAMESITE = os.environ.get("SESSION_COOKIE_SAMESITE", "Lax")
CSRF_COOKIE_SAMESITE = os.environ.get("CSRF_COOKIE_SAMESITE", "Lax")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Health checks and scrapes come over plain HTTP from inside: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# "HTTP_X_FORWARDED_PROTO=https": the TLS terminator's header saying the request came over
# HTTPS. Set it only when that proxy always sets (or strips) the header.
_proxy_ssl = os.environ.get("BOURSE_SECURE_PROXY_SSL_HEADER", "").strip()
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl.split("=", 1)) if "=" in _proxy_ssl else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent on every HTML page (the console, the API docs): only this origin's scripts, styles,
# images, fonts and connections; no framing; forms post here only.
BOURSE_CONTENT_SECURITY_POLICY = os.environ.get(
    "BOURSE_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["exchange.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["exchange.parsers.BoundedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    # Requests without credentials count per source IP; signed ones per key (apikeys).
    "DEFAULT_THROTTLE_CLASSES": ["exchange.ratelimit.AnonymousRateThrottle"],
    "EXCEPTION_HANDLER": "exchange.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
}
# The public origin of this deployment (e.g. `https://api.example.net`, no trailing slash):
# problem `type` URIs, the served OpenAPI `servers` and the docs' links become absolute with it.
BOURSE_PUBLIC_URL = os.environ.get("BOURSE_PUBLIC_URL", "").strip().rstrip("/")
# The API's version (semantic; docs/versioning.md): OpenAPI `info.version`, AsyncAPI, CHANGELOG.md.
BOURSE_API_VERSION = "1.1.0"
SPECTACULAR_SETTINGS = {
    "TITLE": "Bourse API",
    "DESCRIPTION": (
        "The Bourse trading API (REST; the WebSocket API is described by the AsyncAPI document "
        "`/docs/asyncapi.yaml`). Guides are served under `/docs/`: signed requests (`/docs/signing`), "
        "errors (`/docs/errors`), rate limits (`/docs/rate-limits`), a first session (`/docs/quickstart`), "
        "versioning and the changelog (`/docs/versioning`, `/docs/changelog`)."
    ),
    "VERSION": BOURSE_API_VERSION,
    "OAS_VERSION": "3.1.0",
    "CONTACT": {"name": "Bourse integrator documentation", "url": "http://127.0.0.1:8000/docs/"},
    "LICENSE": {"name": "MIT", "identifier": "MIT"},
    "TAGS": [
        {"name": "market data", "description": "Public market data and the server clock; no credentials needed."},
        {"name": "orders", "description": "Submit, read and cancel the signed caller's orders, and read its fills."},
        {"name": "account", "description": "The signed caller's account, API key, balances, ledger and positions."},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI never sends the schema to swagger.io's validator (and so never contacts it).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {"SideEnum": ["buy", "sell"]},
    # Common responses (429, 503, 413, 415), servers, `security: []`, the Problem schema.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "exchange.schema.contract_hook",
                             "exchange.schema.add_order_links"],
}

# --- Logging: one JSON object per line, with the request id -----------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "exchange.logging.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "exchange.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# One JSON access-log line per HTTP request (logger bourse.access: method, path, route,
# status, duration_ms, client, bytes, request_id), whichever server runs Bourse.
BOURSE_ACCESS_LOG = env_bool("BOURSE_ACCESS_LOG", True)
# Celery logs through the LOGGING above (JSON) instead of installing its own text handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Bourse -------------------------------------------------------------------------------
# How long a trade may stay unsettled before reconciliation reports it.
BOURSE_SETTLEMENT_LAG_BUDGET_S = env_int("BOURSE_SETTLEMENT_LAG_BUDGET_S", 30)
# Most commands the engine takes into one batch (one transaction).
BOURSE_ENGINE_BATCH = env_int("BOURSE_ENGINE_BATCH", 500)
# How long transports wait for the engine's verdict before answering `pending` (202).
BOURSE_ENGINE_WAIT_S = env_float("BOURSE_ENGINE_WAIT_S", 2.0)
# The furthest ahead a gtd order's expire_time may lie (days).
BOURSE_GTD_MAX_DAYS = env_int("BOURSE_GTD_MAX_DAYS", 365)
# How long the engine lets commands gather after a wake-up or a partial batch. 0: none, the
# batches form by themselves (the engine takes whatever is pending when it is free, so under
# load a batch holds what arrived during the previous one's matching and commit); measured
# better than 2 ms in throughput, CPU and latency alike (bench/reports/linger/report.md).
BOURSE_ENGINE_LINGER_MS = env_float("BOURSE_ENGINE_LINGER_MS", 0)
# The engine asks the settlement worker to settle a market at most once per this many ms: the
# batches committed meanwhile are settled by the one task (its cost per run is mostly fixed).
# Bounds how much later than the trade settlement starts; 0 sends one task per batch.
BOURSE_SETTLE_EVERY_MS = env_float("BOURSE_SETTLE_EVERY_MS", 50)
# How long a process trusts its cached copy of an API key (apikeys/keycache.py): the bound on
# how late a key change made by another process bites. 0 disables the cache.
BOURSE_KEY_CACHE_S = env_float("BOURSE_KEY_CACHE_S", 1.0)
# Each process's revalidator thread re-reads the keys its requests used lately, in one query
# every half BOURSE_KEY_CACHE_S, so requests do not read keys themselves. Off (0) only for the
# test suite, whose processes run no timer threads (tests/conftest.py).
BOURSE_KEY_REVALIDATE = os.environ.get("BOURSE_KEY_REVALIDATE", "1") != "0"
# How long a process validates orders against its cached copy of a market
# (trading/services/marketcache.py). Correctness does not depend on it: every order's write
# checks the market is unchanged. 0 disables the cache.
BOURSE_MARKET_CACHE_S = env_float("BOURSE_MARKET_CACHE_S", 1.0)
# Threads per HTTP server process serving requests (exchange/httppool.py), each with its own
# persistent database connection; 0 runs Django's stock ASGI handler (a thread per request).
BOURSE_HTTP_THREADS = env_int("BOURSE_HTTP_THREADS", 16)
# Live WebSocket and FIX sessions re-read their keys this often (seconds) besides reacting to
# key-state events at once (apikeys.events): the bound for an event lost in transit.
BOURSE_KEY_RECHECK_S = env_float("BOURSE_KEY_RECHECK_S", 5.0)
# FIX 4.4 order-entry gateway (``manage.py run_fix_gateway``; docs/fix.md).
BOURSE_FIX_HOST = os.environ.get("BOURSE_FIX_HOST", "127.0.0.1")
BOURSE_FIX_PORT = env_int("BOURSE_FIX_PORT", 9878)
BOURSE_FIX_LOGON_WINDOW_MS = env_int("BOURSE_FIX_LOGON_WINDOW_MS", 5000)
# NewOrderSingles of one session in flight at once; 1 keeps them strictly in sequence.
BOURSE_FIX_PIPELINE = env_int("BOURSE_FIX_PIPELINE", 1)
# Bytes of out-of-order messages one session may hold while a gap is resent (and 10,000 of
# them at most); past either the session is logged out.
BOURSE_FIX_MAX_QUEUED_BYTES = env_int("BOURSE_FIX_MAX_QUEUED_BYTES", 4 * 1024 * 1024)
# Connections refused before Logon (garbage, wrong first message) are logged once per source
# address per this many seconds, with the count of those not logged.
BOURSE_FIX_REFUSAL_LOG_INTERVAL_S = env_int("BOURSE_FIX_REFUSAL_LOG_INTERVAL_S", 60)
# Sent application messages are kept this long for ResendRequest (pruned hourly by beat);
# a resend of an older range is answered with SequenceReset-GapFill.
BOURSE_FIX_STORE_RETENTION_S = env_int("BOURSE_FIX_STORE_RETENTION_S", 7 * 86400)
CELERY_BEAT_SCHEDULE["fix-store-prune"] = {"task": "trading.fix.prune", "schedule": 3600}
# Largest accepted request body, in bytes (413 payload_too_large beyond it).
BOURSE_MAX_BODY_BYTES = env_int("BOURSE_MAX_BODY_BYTES", 64 * 1024)
# daphne: every HTTP request must arrive whole (headers and body) within this many seconds of
# the connection opening or of the previous response (slow clients get 408; 0: no limit).
BOURSE_HTTP_REQUEST_TIMEOUT_S = env_float("BOURSE_HTTP_REQUEST_TIMEOUT_S", 10)
# SIGTERM: how long each role may take to finish what it is doing (daphne: requests in flight and
# WebSocket closes; the FIX gateway: Logouts) before it stops anyway (exchange/serving.py).
BOURSE_SHUTDOWN_GRACE_S = env_float("BOURSE_SHUTDOWN_GRACE_S", 10)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(BOURSE_MAX_BODY_BYTES, 2_621_440)

# --- WebSocket API (trading/ws; docs/websocket.md) ---------------------------------------
# How long private events stay replayable with `since` (older ones are pruned).
BOURSE_WS_RETENTION_S = env_int("BOURSE_WS_RETENTION_S", 24 * 3600)
BOURSE_WS_MAX_CONNECTIONS_PER_KEY = env_int("BOURSE_WS_MAX_CONNECTIONS_PER_KEY", 20)
BOURSE_WS_MAX_CONNECTIONS_PER_IP = env_int("BOURSE_WS_MAX_CONNECTIONS_PER_IP", 200)
BOURSE_WS_MAX_SUBSCRIPTIONS = env_int("BOURSE_WS_MAX_SUBSCRIPTIONS", 50)
# Inbound messages per second per connection; past it the connection is closed with 4029.
BOURSE_WS_MAX_MESSAGES_PER_S = env_int("BOURSE_WS_MAX_MESSAGES_PER_S", 20)
# Work per connection per second: an operation costs 1 plus 1 per channel it names.
BOURSE_WS_MAX_WORK_PER_S = env_int("BOURSE_WS_MAX_WORK_PER_S", 200)
BOURSE_WS_MAX_FRAME_BYTES = env_int("BOURSE_WS_MAX_FRAME_BYTES", 16 * 1024)
# After the server sends a close frame, how long the client has to answer it before the TCP
# connection is reset (daphne/autobahn's own default, 1 s, lost error frames to stalled clients).
BOURSE_WS_CLOSE_TIMEOUT_S = env_float("BOURSE_WS_CLOSE_TIMEOUT_S", 5)
# Most events one `since` replays; further behind, the client resyncs over REST.
BOURSE_WS_MAX_REPLAY = env_int("BOURSE_WS_MAX_REPLAY", 10_000)
# The relay re-reads the outbox this often even without a commit signal (a lost signal).
BOURSE_WS_POLL_S = env_float("BOURSE_WS_POLL_S", 1.0)
# Order entry over WebSocket: the threads that run the order services (and wait up to
# BOURSE_ENGINE_WAIT_S for the engine) per process; 0 runs them on the connection's shared
# database thread instead (tests). Order ops a connection may have queued, beyond which one is refused.
BOURSE_WS_ORDER_THREADS = env_int("BOURSE_WS_ORDER_THREADS", 16)
BOURSE_WS_MAX_QUEUED_ORDER_OPS = env_int("BOURSE_WS_MAX_QUEUED_ORDER_OPS", 50)
# Ticker frames go out at most this often per market.
BOURSE_WS_TICKER_INTERVAL_S = env_float("BOURSE_WS_TICKER_INTERVAL_S", 1.0)
# Fan-out writes each event's frame, encoded once, straight to daphne's sockets (off: every
# frame through the ASGI send; docs/websocket.md "Fan-out").
BOURSE_WS_RAW_WRITES = env_bool("BOURSE_WS_RAW_WRITES", True)
CELERY_BEAT_SCHEDULE["outbox-prune"] = {"task": "trading.outbox.prune", "schedule": 3600}
CELERY_IMPORTS = ["trading.outbox.tasks", "trading.fix.tasks"]  # autodiscovery only finds <app>.tasks

# --- API keys, signing and rate limits (apikeys, exchange.ratelimit) ----------------------
# Proxies (CIDRs) whose X-Forwarded-For is believed; without any, the header is ignored.
BOURSE_TRUSTED_PROXIES = env_list("BOURSE_TRUSTED_PROXIES", [])
# Per-address budgets (ip, auth_failures) count an IPv6 client by its /64 (this prefix).
BOURSE_RATE_LIMIT_IPV6_PREFIX = env_int("BOURSE_RATE_LIMIT_IPV6_PREFIX", 64)
# "QUOTA/WINDOW_SECONDS" per policy; docs/rate-limits.md explains each.
BOURSE_RATE_LIMITS = {
    "key": os.environ.get("BOURSE_RATE_LIMIT_KEY", "1200/60"),
    "orders": os.environ.get("BOURSE_RATE_LIMIT_ORDERS", "50/10"),
    "ip": os.environ.get("BOURSE_RATE_LIMIT_IP", "600/60"),
    "auth_failures": os.environ.get("BOURSE_RATE_LIMIT_AUTH_FAILURES", "30/60"),
}
RATELIMIT_USE_CACHE = "default"
# django-ratelimit knows Redis; the embedded SQLite cache is atomic too (exchange/sqlitecache.py).
SILENCED_SYSTEM_CHECKS = [
    "django_ratelimit.W001",
    # Django looks for its own CsrfViewMiddleware by name; the console's subclass
    # (exchange.consolemiddleware) protects every page but the signed API. exchange/checks.py
    # checks it, and the secure-cookie settings Django no longer checks, instead.
    "security.W003",
]

# --- Audit trail and console log-in (audit) -----------------------------------------------
# When committed audit events are sealed into the hash chain: "thread" (shortly after
# commit, coalesced per process), "inline" (in the commit callback), "off" (beat only).
BOURSE_AUDIT_SEAL_MODE = os.environ.get("BOURSE_AUDIT_SEAL_MODE", "thread")
if BOURSE_AUDIT_SEAL_MODE not in ("thread", "inline", "off"):
    raise ImproperlyConfigured("BOURSE_AUDIT_SEAL_MODE is thread, inline or off")
BOURSE_AUDIT_SEAL_DELAY_MS = env_int("BOURSE_AUDIT_SEAL_DELAY_MS", 200)
# Authentication failures: this many per source per window are recorded one by one, the
# rest counted and summarised in one event per window.
BOURSE_AUDIT_AUTH_FAILURE_DETAIL_LIMIT = env_int("BOURSE_AUDIT_AUTH_FAILURE_DETAIL_LIMIT", 10)
BOURSE_AUDIT_AUTH_FAILURE_WINDOW_S = env_int("BOURSE_AUDIT_AUTH_FAILURE_WINDOW_S", 60)
# Console log-in throttling: failures allowed per window, per source IP and per username.
BOURSE_ADMIN_LOGIN_WINDOW_S = env_int("BOURSE_ADMIN_LOGIN_WINDOW_S", 900)
BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_IP = env_int("BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_IP", 20)
BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_USER = env_int("BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_USER", 5)

# --- Operations: heartbeats, readiness, metrics (docs/operations.md) ------------------------
# Each long-running role (engine, FIX gateway) records a heartbeat this often from its own
# loop; a heartbeat older than BOURSE_HEARTBEAT_STALE_S means the role is down.
BOURSE_HEARTBEAT_S = env_float("BOURSE_HEARTBEAT_S", 2)
BOURSE_HEARTBEAT_STALE_S = env_float("BOURSE_HEARTBEAT_STALE_S", 10)
# Beat sends the Celery worker a heartbeat task this often (stale after 3 periods + the above).
BOURSE_WORKER_HEARTBEAT_S = env_int("BOURSE_WORKER_HEARTBEAT_S", 10)
CELERY_BEAT_SCHEDULE["worker-heartbeat"] = {
    "task": "exchange.heartbeat", "schedule": BOURSE_WORKER_HEARTBEAT_S,
    "options": {"expires": BOURSE_WORKER_HEARTBEAT_S},  # a backlog of old beats proves nothing
}
CELERY_IMPORTS.append("exchange.tasks")
# A command waiting longer than this for the engine that owns its market: the market is stalled.
BOURSE_ENGINE_STALL_S = env_int("BOURSE_ENGINE_STALL_S", 10)
# An audit event unsealed for longer than this is reported (the sealer is behind or down).
BOURSE_AUDIT_SEAL_LAG_BUDGET_S = env_int("BOURSE_AUDIT_SEAL_LAG_BUDGET_S", 120)
# The parts /readyz requires (503 when one is down); the others are reported only. "redis"
# is ignored without REDIS_URL. Leave out "fix" where no FIX gateway runs.
BOURSE_READINESS_REQUIRED = env_list(
    "BOURSE_READINESS_REQUIRED", ["database", "redis", "engine", "worker", "settlement", "reconciliation", "fix"]
)
_unknown_parts = set(BOURSE_READINESS_REQUIRED) - {
    "database", "redis", "engine", "worker", "settlement", "reconciliation", "fix", "audit"}
if _unknown_parts:
    raise ImproperlyConfigured(
        f"BOURSE_READINESS_REQUIRED names unknown part(s) {', '.join(sorted(_unknown_parts))}; "
        "use database, redis, engine, worker, settlement, reconciliation, fix, audit."
    )
# /metrics answers requests from these addresses (CIDRs; the client address as
# exchange/clientip.py resolves it) or bearing `Authorization: Bearer BOURSE_METRICS_TOKEN`;
# anyone else gets 403. The embedded mode allows loopback by default, production nobody.
BOURSE_METRICS_ALLOW = env_list("BOURSE_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"] if EMBEDDED else [])
BOURSE_METRICS_TOKEN = os.environ.get("BOURSE_METRICS_TOKEN", "").strip()

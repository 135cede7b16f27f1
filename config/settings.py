"""Jobdeck settings: one module, every difference between environments from env vars.

See `.env.example` for the variables and their defaults.
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (in a development checkout, "
            "./jobdeck manage … runs manage.py with DEBUG=1)."
        )
    SECRET_KEY = "django-insecure-jobdeck-development-only"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "jobs.admin_apps.JobdeckAdminConfig",  # django.contrib.admin with Jobdeck's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "jobs",
    "releases",
    "scheduler",
    "notifications",
    "monitoring",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", BASE_DIR / "config" / "templates"],
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

# --- Database ---------------------------------------------------------------
# SQLite is the embedded default; DATABASE_URL=postgres://… switches to PostgreSQL.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'jobdeck.sqlite3'}"),
        # Persistent connections: without them every broker poll and claim pays a
        # connect, which makes the ORM broker several times slower.
        conn_max_age=env_int("CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while the cluster writes; IMMEDIATE takes the
        # write lock at BEGIN so two writers queue on the busy timeout instead of
        # failing with "database is locked" when a read transaction upgrades.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30),
    }
    # The test database is a file so that real qcluster processes can share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3"),
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_jobdeck_{os.getpid()}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))

# Bodies above this are refused before they reach a view (413 from the API).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# --- Production hardening (all on when DEBUG is off) --------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Cache ------------------------------------------------------------------
# Shared by every web process (and machine), so the API's rate limits hold across
# gunicorn workers: the database cache by default (table jobdeck_cache, made by
# `migrate`), Redis with JOBDECK_CACHE_URL=redis://host:6379/1; locmem:// keeps it in
# each process (one-process development and the unit tests only).
JOBDECK_CACHE_URL = env_str("JOBDECK_CACHE_URL", "")
JOBDECK_CACHE_TABLE = "jobdeck_cache"
_shared_cache: dict[str, Any]
if JOBDECK_CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    _shared_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": JOBDECK_CACHE_URL,
    }
elif JOBDECK_CACHE_URL.startswith("locmem://"):
    _shared_cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
elif JOBDECK_CACHE_URL in ("", "db://"):
    _shared_cache = {
        # Django's database cache with an atomic incr() (jobs/cache.py).
        "BACKEND": "jobs.cache.DatabaseCache",
        "LOCATION": JOBDECK_CACHE_TABLE,
        "OPTIONS": {"MAX_ENTRIES": env_int("JOBDECK_CACHE_MAX_ENTRIES", 20_000)},
    }
else:
    raise ImproperlyConfigured(
        f"JOBDECK_CACHE_URL={JOBDECK_CACHE_URL!r}: use redis://…, rediss://…, db:// or locmem://"
    )
CACHES = {
    "default": _shared_cache,
    # Per process: django-q2's cluster statistics (as before; see Q_CLUSTER["cache"]).
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # django-rest-knox tokens: stored hashed, with an expiry (jobs/api/auth.py).
        "jobs.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        # DRF's parsers with Django's body size limit (413) and a JSON nesting guard.
        "jobs.api.parsers.JSONParser",
        "jobs.api.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # drf-spectacular's AutoSchema, plus the error responses of each operation.
    "DEFAULT_SCHEMA_CLASS": "jobs.api.schema.JobdeckAutoSchema",
    # DRF's anon/user rates, counted in the shared cache (jobs/api/throttles.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "jobs.api.throttles.AnonRateThrottle",
        "jobs.api.throttles.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("JOBDECK_THROTTLE_ANON", "60/minute"),
        "user": env_str("JOBDECK_THROTTLE_USER", "6000/minute"),
    },
    "DEFAULT_PAGINATION_CLASS": "jobs.api.pagination.JobdeckCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "jobs.api.errors.exception_handler",
    "DATETIME_FORMAT": "iso-8601",
}

# API tokens (django-rest-knox): only a digest is stored; each expires after the TTL.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_float("JOBDECK_TOKEN_TTL_HOURS", 720)),
    "TOKEN_LIMIT_PER_USER": env_int("JOBDECK_TOKEN_LIMIT_PER_USER", 100),
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Jobdeck API",
    "DESCRIPTION": "Jobs, tasks, logs, schedules and releases on django-q2.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus",
        "TaskStatusEnum": "jobs.models.TaskStatus",
        "NotificationRuleEventEnum": "notifications.models.RULE_EVENTS",
        "DeliveryEventEnum": "notifications.models.Event",
    },
}

# --- Jobdeck ------------------------------------------------------------------
# Seconds between heartbeats of a running job; 0 disables the worker's background
# thread (heartbeat and timed log flushes; tests run jobs in-process without it).
JOBDECK_HEARTBEAT_SECONDS = env_float("JOBDECK_HEARTBEAT_SECONDS", 5.0)
# A running job whose heartbeat is older than this is recovered by the sweep.
JOBDECK_STALE_SECONDS = env_float("JOBDECK_STALE_SECONDS", 60.0)
# How long one broker message may keep its worker claiming further jobs.
JOBDECK_DRAIN_SECONDS = env_float("JOBDECK_DRAIN_SECONDS", 30.0)
# A draining worker that still sees runnable jobs checks this often whether workers of
# its clusters are idle and wakes them (jobs.broker.DrainFanOut); negative: never.
JOBDECK_FANOUT_SECONDS = env_float("JOBDECK_FANOUT_SECONDS", 0.5)
# How long a process keeps an operator's job-type timeouts before reading them again
# (docs/flow-control.md); every other flow rule is read by each claim.
JOBDECK_FLOW_REFRESH_SECONDS = env_float("JOBDECK_FLOW_REFRESH_SECONDS", 5.0)
# Longest accepted log message; longer ones are truncated, never refused.
JOBDECK_LOG_MESSAGE_MAX = env_int("JOBDECK_LOG_MESSAGE_MAX", 4000)
# A running job's log lines are written in batches (jobs/worker/logbuffer.py): within this
# many seconds (the worker's heartbeat thread flushes), at the end of each task, or
# once this many lines wait. 0 writes every line at once.
JOBDECK_LOG_FLUSH_SECONDS = env_float("JOBDECK_LOG_FLUSH_SECONDS", 0.2)
JOBDECK_LOG_FLUSH_LINES = env_int("JOBDECK_LOG_FLUSH_LINES", 1000)
# Base of the exponential backoff between automatic retries, in seconds.
JOBDECK_RETRY_BACKOFF_SECONDS = env_float("JOBDECK_RETRY_BACKOFF_SECONDS", 2.0)
JOBDECK_CLEANUP_BATCH_SIZE = env_int("JOBDECK_CLEANUP_BATCH_SIZE", 2000)
# Sleep between cleanup batches: trades cleanup time for the workers' share of the
# machine (docs/benchmarks.md measures both).
JOBDECK_CLEANUP_PAUSE_SECONDS = env_float("JOBDECK_CLEANUP_PAUSE_SECONDS", 0.0)
# An occurrence later than this (seconds) counts as missed: the misfire policy decides.
JOBDECK_SCHEDULE_MISFIRE_GRACE = env_int("JOBDECK_SCHEDULE_MISFIRE_GRACE", 300)
# /api/health/: no cluster seen for this long = down (503); a runnable job waiting
# longer than the queue threshold = degraded.
JOBDECK_HEALTH_CLUSTER_SECONDS = env_int("JOBDECK_HEALTH_CLUSTER_SECONDS", 150)
JOBDECK_HEALTH_QUEUE_SECONDS = env_int("JOBDECK_HEALTH_QUEUE_SECONDS", 300)
# Queues served by named django-q2 clusters: "reports=jobdeck-reports,mail=jobdeck-mail".
# A cluster started with Q_CLUSTER_NAME=jobdeck-reports claims only `reports` jobs;
# the default cluster serves `default` (see jobs/queues.py).
JOBDECK_QUEUE_CLUSTERS = dict(
    item.split("=", 1) for item in env_list("JOBDECK_QUEUE_CLUSTERS", "") if "=" in item
)
# How many jobs one worker process runs at once, each in its own thread with its own
# database connection (jobs/worker/threads.py). 1 runs them one by one in the process's
# main thread, as always; raise it for jobs that mostly wait on I/O.
# A malformed value is kept as given, for the start-up check to name (jobdeck.E020).
_worker_threads = env_str("JOBDECK_WORKER_THREADS", "1").strip() or "1"
JOBDECK_WORKER_THREADS: int | str = (
    int(_worker_threads) if _worker_threads.isdigit() else _worker_threads
)
# Per queue, overriding JOBDECK_WORKER_THREADS: "reports=10,mail=4" (checked at start,
# jobdeck.E020/E021/W020; see jobs/queues.py worker_threads).
JOBDECK_QUEUE_THREADS = dict(
    item.split("=", 1) for item in env_list("JOBDECK_QUEUE_THREADS", "") if "=" in item
)
# The most jobs a threaded worker claims in one statement (and settles in one commit):
# each round it asks for as many as it has threads free, up to this (jobs/worker/threads.py).
# 1 claims them one by one. Checked at start (jobdeck.E022).
JOBDECK_CLAIM_BATCH = env_int("JOBDECK_CLAIM_BATCH", 32)
# Extra modules registering job types, comma-separated (beyond each app's jobtypes.py).
JOBDECK_JOBTYPE_MODULES = env_list("JOBDECK_JOBTYPE_MODULES", "")
# Search on SQLite (no GIN or trigram indexes there): `?config.<key>=` looks at the
# newest N jobs, `?log_contains=` at the newest N log lines (jobs/search.py).
JOBDECK_SEARCH_SQLITE_JOBS = env_int("JOBDECK_SEARCH_SQLITE_JOBS", 100_000)
JOBDECK_SEARCH_SQLITE_LOG_LINES = env_int("JOBDECK_SEARCH_SQLITE_LOG_LINES", 200_000)
# Statistics (/api/stats/…, the admin's charts) are cached this many seconds.
JOBDECK_STATS_CACHE_SECONDS = env_int("JOBDECK_STATS_CACHE_SECONDS", 60)

# --- Notifications and monitoring (docs/notifications.md, docs/monitoring.md) -------
# Django's mailer sends notify.email deliveries: SMTP by default (EMAIL_HOST, …), or
# EMAIL_BACKEND=django.core.mail.backends.console.EmailBackend, …filebased… (writes
# files to EMAIL_FILE_PATH); the tests use locmem.
_email_backend = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
_email_options: dict[str, Any] = {}
if _email_backend.endswith(".smtp.EmailBackend"):
    _email_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER", ""),
        "password": env_str("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": env_int("EMAIL_TIMEOUT", 30),
    }
elif _email_backend.endswith(".filebased.EmailBackend"):
    _email_options = {"file_path": env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))}
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "jobdeck@localhost")
# Hosts webhook rules may call, as ALLOWED_HOSTS patterns ("hooks.example.com",
# ".example.com", "*"); empty: no webhook at all.
JOBDECK_WEBHOOK_ALLOWED_HOSTS = env_list("JOBDECK_WEBHOOK_ALLOWED_HOSTS", "")
JOBDECK_WEBHOOK_TIMEOUT_SECONDS = env_float("JOBDECK_WEBHOOK_TIMEOUT_SECONDS", 10.0)
# Attempts of a delivery job (backoff: JOBDECK_RETRY_BACKOFF_SECONDS · 2^(attempt-1)).
JOBDECK_NOTIFY_MAX_ATTEMPTS = env_int("JOBDECK_NOTIFY_MAX_ATTEMPTS", 8)
JOBDECK_NOTIFY_PRIORITY = env_int("JOBDECK_NOTIFY_PRIORITY", 10)
# How long a process keeps the enabled rules before reading them again.
JOBDECK_NOTIFY_RULES_CACHE_SECONDS = env_float("JOBDECK_NOTIFY_RULES_CACHE_SECONDS", 5.0)
# How far back the periodic catch-up looks for finished jobs with no delivery.
JOBDECK_NOTIFY_CATCHUP_MINUTES = env_int("JOBDECK_NOTIFY_CATCHUP_MINUTES", 10)
# GET /metrics: with a token, `Authorization: Bearer <token>` is required; without one,
# only clients whose address is in the allow-list (exact IPs or CIDR networks).
JOBDECK_METRICS_TOKEN = env_str("JOBDECK_METRICS_TOKEN", "")
JOBDECK_METRICS_ALLOWED_IPS = env_list("JOBDECK_METRICS_ALLOWED_IPS", "127.0.0.1,::1")
# The recent window of the finished-jobs and duration metrics.
JOBDECK_METRICS_WINDOW_SECONDS = env_int("JOBDECK_METRICS_WINDOW_SECONDS", 300)

# --- django-q2 ----------------------------------------------------------------
# django-q2 is plain at-least-once delivery here: Jobdeck owns job state and
# attempts. `retry` is a visibility timeout, so `timeout` stays well below it.
Q_WORKERS = env_int("Q_WORKERS", 2)
Q_CLUSTER: dict[str, Any] = {
    "name": env_str("Q_CLUSTER_NAME_PREFIX", "jobdeck"),
    "workers": Q_WORKERS,
    "timeout": env_int("Q_TIMEOUT", 600),
    "retry": env_int("Q_RETRY", 720),
    "max_attempts": 1,
    "ack_failures": True,
    "queue_limit": env_int("Q_QUEUE_LIMIT", Q_WORKERS * 2),
    "recycle": env_int("Q_RECYCLE", 500),
    "max_rss": env_int("Q_MAX_RSS_KB", 262_144),
    # How often an idle cluster asks the ORM broker for messages: pickup latency is
    # about half of it. One indexed SELECT per poll (50/s per cluster) is cheap.
    "poll": env_float("Q_POLL", 0.02),
    "save_limit": env_int("Q_SAVE_LIMIT", 250),
    "catch_up": False,
    "label": "Django Q",
    # django-q2 requires this key when a cluster runs under another Q_CLUSTER_NAME.
    "ALT_CLUSTERS": {},
    # Its cluster statistics stay per process, as they were: a cluster writes them
    # twice a second, traffic the shared (database) cache need not carry.
    "cache": "local",
}
if env_str("JOBDECK_BROKER", "orm") == "redis":
    Q_CLUSTER["redis"] = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
else:
    Q_CLUSTER["orm"] = "default"

# --- django.tasks ---------------------------------------------------------------
# Django's @task functions run as Jobdeck jobs (type tasks.call) in the Jobdeck queue
# of the task's queue_name, on the cluster JOBDECK_QUEUE_CLUSTERS maps it to.
TASKS = {
    "default": {
        "BACKEND": "jobs.tasks_backend.JobdeckBackend",
        # Every Jobdeck queue (jobs.queues): "default" plus JOBDECK_QUEUE_CLUSTERS's.
        "QUEUES": ["default", *JOBDECK_QUEUE_CLUSTERS],
        "OPTIONS": {
            "MAX_ATTEMPTS": env_int("JOBDECK_TASKS_MAX_ATTEMPTS", 1),
        },
    }
}

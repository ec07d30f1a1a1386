"""Mergeworks settings.

With no environment set the hub runs embedded: SQLite, local-disk storage and
Celery over kombu's filesystem transport. Each production part is switched on by
one variable: DATABASE_URL (PostgreSQL), REDIS_URL (broker + cache), S3_BUCKET
(with S3_ENDPOINT_URL and credentials for any S3-compatible store).
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

import dj_database_url

from hub.env import ConfigError, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MERGEWORKS_DATA_DIR", str(BASE_DIR / "var")))
# Weightless diffusers configs + tokenizers per base model (infra/scripts/fetch-base-configs.sh).
BASE_CONFIGS_DIR = Path(env_str("BASE_CONFIGS_DIR", str(DATA_DIR / "base-configs")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if env_bool("PRODUCTION", False):
        raise ConfigError("SECRET_KEY (or SECRET_KEY_FILE) must be set when PRODUCTION=true")
    SECRET_KEY = "insecure-embedded-mode-key-change-me"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and Redoc as static files: the docs render with no internet access.
    "drf_spectacular_sidecar",
    "hub.accounts",
    "hub.catalog",
    "hub.files",
    "hub.uploads",
    "hub.hf",
    "merges.registry",
    "hub.previews",
    "hub.moderation",
    "hub.community",
    "frontend",
]

MIDDLEWARE = [
    # Outermost, so every failure under /api/ and on the HF routes ends as JSON.
    "hub.api.middleware.ApiErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hub.urls"
WSGI_APPLICATION = "hub.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "frontend:login"
LOGIN_REDIRECT_URL = "frontend:home"
LOGOUT_REDIRECT_URL = "frontend:home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
# Timeouts, so an unreachable or silent part costs a request seconds, not minutes.
# Web processes (hub.wsgi sets MERGEWORKS_ROLE=web) also cap each SQL
# statement; workers, the CLI and migrations do not, because merges and
# ingests legitimately run long.
MERGEWORKS_ROLE = env_str("MERGEWORKS_ROLE", "")
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 3)
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 30000 if MERGEWORKS_ROLE == "web" else 0)
REDIS_CONNECT_TIMEOUT = float(env_str("REDIS_CONNECT_TIMEOUT", "2"))
REDIS_SOCKET_TIMEOUT = float(env_str("REDIS_SOCKET_TIMEOUT", "2"))
# A request waits for S3 at most about connect + read timeout (one attempt);
# workers, storing and re-reading whole files, wait longer and retry.
_WEB = MERGEWORKS_ROLE == "web"
S3_CONNECT_TIMEOUT = float(env_str("S3_CONNECT_TIMEOUT", "2"))
S3_READ_TIMEOUT = float(env_str("S3_READ_TIMEOUT", "3" if _WEB else "30"))
S3_MAX_ATTEMPTS = env_int("S3_MAX_ATTEMPTS", 1 if _WEB else 3)
# Readiness (/api/v1/health): how long each dependency probe may take.
HEALTH_PROBE_TIMEOUT = float(env_str("HEALTH_PROBE_TIMEOUT", "2"))
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options.setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
    # A peer that stops acknowledging (host gone, partition) fails the
    # connection instead of leaving the request waiting on the kernel.
    _db_options.setdefault("keepalives", 1)
    _db_options.setdefault("keepalives_idle", 10)
    _db_options.setdefault("keepalives_interval", 5)
    _db_options.setdefault("keepalives_count", 2)
    _db_options.setdefault("tcp_user_timeout", 10000)
    if DB_STATEMENT_TIMEOUT_MS > 0:
        _db_options["options"] = f"{_db_options.get('options', '')} -c statement_timeout={DB_STATEMENT_TIMEOUT_MS}".strip()
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # The embedded worker writes while the web process reads.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker -------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Rendered models-list pages shared by anonymous clients, in Redis, dropped on
# any catalogue write (hub/catalog/page_cache.py); the TTL only bounds a lost bump.
PAGE_CACHE = env_bool("PAGE_CACHE", True)
PAGE_CACHE_TTL = env_int("PAGE_CACHE_TTL", 60)

# --- Storage -----------------------------------------------------------------
S3_BUCKET = env_str("S3_BUCKET")
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL")
# Browsers and API clients may reach the store under another name than the
# web process does (e.g. http://minio:9000 inside the stack).
S3_PUBLIC_ENDPOINT_URL = env_str("S3_PUBLIC_ENDPOINT_URL", S3_ENDPOINT_URL)
PRESIGNED_URL_TTL = env_int("PRESIGNED_URL_TTL", 300)
if S3_BUCKET:
    _s3_options = {
        "bucket_name": S3_BUCKET,
        "endpoint_url": S3_ENDPOINT_URL,
        "access_key": env_str("S3_ACCESS_KEY_ID"),
        "secret_key": env_str("S3_SECRET_ACCESS_KEY"),
        "region_name": env_str("S3_REGION", "us-east-1"),
        "public_endpoint_url": S3_PUBLIC_ENDPOINT_URL,
        "querystring_expire": PRESIGNED_URL_TTL,
        "file_overwrite": True,
        "default_acl": None,
        "addressing_style": env_str("S3_ADDRESSING_STYLE", "path"),
        "signature_version": "s3v4",
        "connect_timeout": S3_CONNECT_TIMEOUT,
        "read_timeout": S3_READ_TIMEOUT,
        "max_attempts": S3_MAX_ATTEMPTS,
    }
    _blob_backend = {"BACKEND": "hub.files.storage.S3BlobStorage", "OPTIONS": _s3_options}
    _media_backend = {"BACKEND": "hub.files.storage.S3BlobStorage", "OPTIONS": {**_s3_options, "location": "media"}}
else:
    _blob_backend = {"BACKEND": "hub.files.storage.LocalBlobStorage", "OPTIONS": {"location": str(DATA_DIR / "store")}}
    _media_backend = {
        "BACKEND": "hub.files.storage.LocalBlobStorage",
        "OPTIONS": {"location": str(DATA_DIR / "store" / "media")},
    }
STORAGES = {
    "default": _media_backend,
    "blobs": _blob_backend,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve app static files straight from their folders too, so a checkout works
# before (or without) collectstatic.
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "/media/"

# --- Celery (CELERY_ namespace) --------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    _queue_dir = DATA_DIR / "celery"
    for _sub in ("queue", "processed", "results", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        # Exchange tables (and the remote-control pidbox), otherwise written to the cwd.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{_queue_dir / 'results'}"
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600)
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        # Above BRPOP's 1 s wait, so a worker's idle poll never times out.
        "socket_timeout": max(REDIS_SOCKET_TIMEOUT, 2.0),
        "socket_keepalive": True,
    }
    CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_CONNECT_TIMEOUT
    CELERY_REDIS_SOCKET_TIMEOUT = max(REDIS_SOCKET_TIMEOUT, 2.0)
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_CONNECT_TIMEOUT
# Workers keep retrying the broker at start-up instead of exiting.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The hard limit stays below the visibility timeout so Redis never redelivers a
# task that is still running.
CELERY_TASK_TIME_LIMIT = min(env_int("CELERY_TASK_TIME_LIMIT", 3 * 3600), CELERY_VISIBILITY_TIMEOUT - 300)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "workers.tasks.ingest.*": {"queue": "ingest"},
    "workers.tasks.housekeeping.*": {"queue": "ingest"},
    # The sweeper must not wait behind hours-long merges on the gpu queue.
    "workers.tasks.merge.merge_jobs_sweep": {"queue": "ingest"},
    "workers.tasks.merge.*": {"queue": "gpu"},
    "workers.tasks.render.*": {"queue": "gpu"},
}
CELERY_BEAT_SCHEDULE = {
    "downloads-rollup": {"task": "workers.tasks.housekeeping.downloads_rollup", "schedule": 60.0},
    "uploads-expire": {"task": "workers.tasks.housekeeping.uploads_expire", "schedule": 900.0},
    "staging-sweep": {"task": "workers.tasks.housekeeping.staging_sweep", "schedule": 900.0},
    # Often: it restarts a job whose worker died with its message (whole worker killed) within seconds.
    "merge-jobs-sweep": {"task": "workers.tasks.merge.merge_jobs_sweep", "schedule": 10.0},
    "render-jobs-sweep": {"task": "workers.tasks.render.render_jobs_sweep", "schedule": 60.0},
}
CELERY_TASK_ALWAYS_EAGER = False
# Beat runs as its own process (never `worker -B`, whose beat outlives a killed
# worker) and schedules only while it holds a single-instance lock: a Redis key
# renewed every few seconds that expires BEAT_LOCK_TTL after its holder dies,
# or an flock in the data dir in embedded mode (workers/beat.py).
CELERY_BEAT_SCHEDULER = "workers.beat:LockedScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 5
BEAT_LOCK_TTL = env_int("BEAT_LOCK_TTL", 30)

# --- REST API ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.accounts.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hub.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["hub.api.throttles.WriteRateThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mergeworks API",
    "DESCRIPTION": "Catalogue of Stable Diffusion checkpoints and LoRAs, and a registry of merge recipes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl: Swagger UI would otherwise send the schema to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Path ids past a bigint answer 404 (hub.api.middleware); say so in the schema.
    "PATH_CONVERTER_OVERRIDES": {"int": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "hub.api.schema_extensions.add_common_error_responses",
    ],
}
# Virus scanning with ClamAV's daemon (hub.files.virus_scan): a Unix socket, or
# a host (and port). Unset: files are not virus-scanned and no status is shown.
CLAMD_SOCKET = env_str("CLAMD_SOCKET")
CLAMD_HOST = env_str("CLAMD_HOST")
CLAMD_PORT = env_int("CLAMD_PORT", 3310)
CLAMD_TIMEOUT = env_int("CLAMD_TIMEOUT", 600)
DOWNLOAD_RATE_LIMIT_PER_MINUTE = env_int("DOWNLOAD_RATE_LIMIT_PER_MINUTE", 120)
# Limits and counters shared by every process (hub.limits): Redis with
# REDIS_URL, else an SQLite file under DATA_DIR.
WRITE_RATE_LIMIT_PER_MINUTE = env_int("WRITE_RATE_LIMIT_PER_MINUTE", 120)
# One download per client and file within this many seconds, however many
# requests (resumes, HEAD then GET) it takes.
DOWNLOAD_COUNT_WINDOW = env_int("DOWNLOAD_COUNT_WINDOW", 3600)
LIMITS_KEY_PREFIX = env_str("LIMITS_KEY_PREFIX", "mw:")
# X-Forwarded-For is believed only from these proxies (CIDRs), or from the
# last TRUSTED_PROXY_HOPS hops; with neither, the client is REMOTE_ADDR.
# infra/proxy/nginx.conf is one hop (infra/env.example sets 1).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _cidr in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError as exc:
        raise ConfigError(f"TRUSTED_PROXIES: {_cidr!r} is not an address or CIDR ({exc})") from exc
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 64 * 1024**3)
# Uploads (hub.uploads): part size (S3 raises it to 5 MiB at least), how long a
# part URL stays valid, and after how long an unfinished upload is aborted.
UPLOAD_PART_SIZE = env_int("UPLOAD_PART_SIZE", 64 * 1024**2)
UPLOAD_PART_URL_TTL = env_int("UPLOAD_PART_URL_TTL", 3600)
UPLOAD_TTL = env_int("UPLOAD_TTL", 24 * 3600)
# What a killed process left under staging/ (and multipart uploads outside
# staging/uploads/) is removed once this old: longer than any task may run.
STAGING_TTL = env_int("STAGING_TTL", CELERY_TASK_TIME_LIMIT + 600)

# --- Email (password resets) -------------------------------------------------
# EMAIL_HOST switches on SMTP. Without it the hub runs embedded and writes each
# message as a file under DATA_DIR/mail, where a local user finds the reset link.
# EMAIL_BACKEND overrides either choice (e.g. the console backend).
EMAIL_HOST = env_str("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
    if EMAIL_USE_TLS and EMAIL_USE_SSL:
        raise ConfigError("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: STARTTLS (port 587) or implicit TLS (port 465)")
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    EMAIL_FILE_PATH = DATA_DIR / "mail"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Mergeworks <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# How long a password-reset link works (Django's default is 3 days).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
# At most one reset email per address per this many seconds (0: no limit).
PASSWORD_RESET_EMAIL_INTERVAL = env_int("PASSWORD_RESET_EMAIL_INTERVAL", 60)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

DEFAULT_EXCEPTION_REPORTER = "hub.errorreports.RedactingExceptionReporter"

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # `?token=` keys and part-URL signatures never reach a log line (hub.logredact).
    "filters": {"redact_secrets": {"()": "hub.logredact.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

"""Mergeworks settings.

With no environment set the hub runs embedded: SQLite, local-disk storage and
Celery over kombu's filesystem transport. Each production part is switched on by
one variable: DATABASE_URL (PostgreSQL), REDIS_URL (broker + cache), S3_BUCKET
(with S3_ENDPOINT_URL and credentials for any S3-compatible store).
"""
from __future__ import annotations

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
    "hub.accounts",
    "hub.catalog",
    "hub.files",
    "hub.uploads",
    "hub.hf",
    "merges.registry",
    "hub.previews",
    "hub.community",
    "frontend",
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
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
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
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
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
    "merge-jobs-sweep": {"task": "workers.tasks.merge.merge_jobs_sweep", "schedule": 60.0},
    "render-jobs-sweep": {"task": "workers.tasks.render.render_jobs_sweep", "schedule": 60.0},
}
CELERY_TASK_ALWAYS_EAGER = False

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
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mergeworks API",
    "DESCRIPTION": "Catalogue of Stable Diffusion checkpoints and LoRAs, and a registry of merge recipes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}
DOWNLOAD_RATE_LIMIT_PER_MINUTE = env_int("DOWNLOAD_RATE_LIMIT_PER_MINUTE", 120)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 64 * 1024**3)
# Uploads (hub.uploads): part size (S3 raises it to 5 MiB at least), how long a
# part URL stays valid, and after how long an unfinished upload is aborted.
UPLOAD_PART_SIZE = env_int("UPLOAD_PART_SIZE", 64 * 1024**2)
UPLOAD_PART_URL_TTL = env_int("UPLOAD_PART_URL_TTL", 3600)
UPLOAD_TTL = env_int("UPLOAD_TTL", 24 * 3600)

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

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

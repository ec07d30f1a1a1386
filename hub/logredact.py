"""Keys stay out of logs and error reports.

Download clients may pass their API key as `?token=mw_…` (Civitai's
convention), and local-disk part URLs carry a `signature`. Both would
otherwise be written in plain text by gunicorn's access log, by Django's
request logging and into a 500 error report. Three places redact them:

1. `GunicornLogger` (set by `gunicorn.conf.py`) for gunicorn's access and
   error logs;
2. `RedactSecretsFilter` on the LOGGING console handler, for every record the
   hub itself logs (runserver's request lines included);
3. `hub.errorreports.RedactingExceptionReporter` (DEFAULT_EXCEPTION_REPORTER)
   for Django's error reports: the URL, the GET parameters, META and frame
   variables.

infra/proxy/nginx.conf does the same for nginx's access log. This module
imports nothing of Django: gunicorn loads it before the app.
"""
from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger as _GunicornLogger

REDACTED = "[redacted]"
SECRET_PARAMS = ("token", "access_token", "api_key", "apikey", "signature", "x-amz-signature", "x-amz-security-token")

# A secret query parameter's value: up to the next &, space, quote or end.
_PARAM = re.compile(r"(?i)(?P<name>(?:^|[?&;])(?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)[^&\s\"'#;]*")
# A Mergeworks key anywhere (a header dumped in a log, a key in a path): its
# public prefix stays, so the key can still be told apart, the secret goes.
_KEY = re.compile(r"\b(mw_[0-9a-f]{12}_)[A-Za-z0-9_\-]{8,}")


def redact(text: str) -> str:
    """`text` with secret query values and API key secrets replaced."""
    if not text or ("=" not in text and "mw_" not in text):
        return text
    return _KEY.sub(r"\1" + REDACTED, _PARAM.sub(r"\g<name>" + REDACTED, text))


_TRACEBACKS = logging.Formatter()


class RedactSecretsFilter(logging.Filter):
    """Redacts a record's formatted message (and traceback text) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the formatter's to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text once set, so the traceback is written redacted.
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger with every access and error line redacted."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        secret_filter = RedactSecretsFilter()
        for log in (self.error_log, self.access_log):
            log.addFilter(secret_filter)
            for handler in log.handlers:
                handler.addFilter(secret_filter)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "q", "U", "f", "{raw_uri}e"):
            if isinstance(atoms.get(name), str):
                atoms[name] = redact(atoms[name])
        return atoms

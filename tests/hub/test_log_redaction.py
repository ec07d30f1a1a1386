"""Keys passed as `?token=` stay out of the hub's logs, gunicorn's, nginx's and Django's error reports."""
from __future__ import annotations

import io
import logging
import re
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory

from hub.errorreports import RedactingExceptionReporter
from hub.logredact import RedactSecretsFilter, redact

ROOT = Path(__file__).resolve().parents[2]
KEY = "mw_0123456789ab_S3cretS3cretS3cretS3cretS3cretS3cret-_x"
SECRET = KEY.split("_", 2)[2]


@pytest.mark.parametrize("line, kept", [
    (f"GET /api/download/models/1?token={KEY} HTTP/1.1", "GET /api/download/models/1?token=[redacted] HTTP/1.1"),
    (f"GET /api/download/models/1?fileId=2&token={KEY}&fp=fp16 HTTP/1.1",
     "GET /api/download/models/1?fileId=2&token=[redacted]&fp=fp16 HTTP/1.1"),
    (f"GET /x?TOKEN=a&token=b&Signature=c HTTP/1.1", "GET /x?TOKEN=[redacted]&token=[redacted]&Signature=[redacted] HTTP/1.1"),
    (f"Authorization: Bearer {KEY}", "Authorization: Bearer mw_0123456789ab_[redacted]"),
    ("GET /api/v1/models?query=tokenizer&limit=20 HTTP/1.1", "GET /api/v1/models?query=tokenizer&limit=20 HTTP/1.1"),
])
def test_redact(line, kept):
    assert redact(line) == kept


def test_log_records_are_redacted_by_the_console_handler_filter():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    try:
        log.warning('"GET %s HTTP/1.1" 200', f"/api/download/models/1?token={KEY}")
        try:
            raise ValueError(f"bad key {KEY}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert SECRET not in stream.getvalue()
    assert "token=[redacted]" in stream.getvalue()


def test_the_settings_wire_the_filter_and_the_reporter(settings):
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["redact_secrets"]
    assert settings.DEFAULT_EXCEPTION_REPORTER == "hub.errorreports.RedactingExceptionReporter"


def test_error_reports_hold_no_key(settings):
    settings.DEBUG = True
    request = RequestFactory().get(f"/api/download/models/1?token={KEY}&fileId=3", HTTP_REFERER=f"/x?token={KEY}")

    def view(request, token):
        raise RuntimeError("boom")

    try:
        view(request, KEY)
    except RuntimeError:
        reporter = RedactingExceptionReporter(request, *sys.exc_info())
    html, text = reporter.get_traceback_html(), reporter.get_traceback_text()
    assert SECRET not in html and SECRET not in text
    assert "fileId" in text and "[redacted]" in text


# --- nginx -------------------------------------------------------------------------------

NGINX = (ROOT / "infra" / "proxy" / "nginx.conf").read_text()


def _nginx_map(source: str) -> list[tuple[re.Pattern, str]]:
    """The regex entries of the map over `source`, as Python patterns (PCRE's (?P<name>) syntax is Python's)."""
    body = re.search(r"map \$" + re.escape(source) + r" \$\w+ \{(.*?)\n\}", NGINX, re.S).group(1)
    entries = []
    for pattern, value in re.findall(r'^\s*"~\*(.*?)"\s+"(.*?)";', body, re.M):
        entries.append((re.compile(pattern, re.I), value))
    return entries


def _nginx_apply(source: str, value: str, variables: dict[str, str]) -> str:
    for pattern, replacement in _nginx_map(source):
        match = pattern.search(value)
        if match:
            names = {**variables, **match.groupdict()}
            return re.sub(r"\$\{?(\w+)\}?", lambda m: names[m.group(1)], replacement)
    return value


def _nginx_logged(request_line: str) -> str:
    method, target, protocol = request_line.split(" ")
    variables = {"request_method": method, "uri": target.split("?")[0], "server_protocol": protocol}
    once = _nginx_apply("request", request_line, variables)
    return _nginx_apply("mw_request_once", once, variables)


@pytest.mark.parametrize("line", [
    f"GET /api/download/models/1?token={KEY} HTTP/1.1",
    f"GET /api/download/models/1?fileId=2&token={KEY}&fp=fp16 HTTP/1.1",
    f"GET /api/download/models/1?token={KEY}&token={KEY} HTTP/1.1",
    f"PUT /api/v1/uploads/x/parts/1?expires=1&signature={SECRET} HTTP/1.1",
])
def test_nginx_logs_no_key(line):
    logged = _nginx_logged(line)
    assert SECRET not in logged and "[redacted]" in logged
    assert "mw_redacted" in NGINX and "access_log /var/log/nginx/access.log mw_redacted;" in NGINX
    assert '"$mw_request"' in NGINX and '"$mw_referer"' in NGINX and "$request " not in NGINX.split("log_format")[1]


def test_nginx_keeps_the_rest_of_the_request_line():
    line = f"GET /api/download/models/1?fileId=2&token={KEY}&fp=fp16 HTTP/1.1"
    assert _nginx_logged(line) == "GET /api/download/models/1?fileId=2&token=[redacted]&fp=fp16 HTTP/1.1"
    plain = "GET /api/v1/models?limit=20 HTTP/1.1"
    assert _nginx_logged(plain) == plain

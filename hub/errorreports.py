"""Django's error report (the DEBUG page and the admins' e-mail) without keys; see hub.logredact."""
from __future__ import annotations

from django.views.debug import ExceptionReporter

from hub.logredact import REDACTED, SECRET_PARAMS, redact


def _redact_value(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    return value


class RedactingExceptionReporter(ExceptionReporter):
    """Django's error report (page and e-mail) without secret query values or key secrets."""

    def _get_raw_insecure_uri(self) -> str:
        return redact(super()._get_raw_insecure_uri())

    def get_traceback_data(self) -> dict:
        data = super().get_traceback_data()
        for frame in data.get("frames", []):
            if "vars" in frame:
                frame["vars"] = [(name, _redact_value(value)) for name, value in frame["vars"]]
        data["request_meta"] = _redact_value(data.get("request_meta", {}))
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (k, REDACTED if k.lower() in SECRET_PARAMS else redact(v)) for k, v in data["request_GET_items"]
            ]
        if "request_insecure_uri" in data:
            data["request_insecure_uri"] = redact(data["request_insecure_uri"])
        for key in ("exception_value", "exception_notes"):
            if isinstance(data.get(key), str):
                data[key] = redact(data[key])
        return data

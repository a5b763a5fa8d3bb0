"""Logging: one JSON object per line with the request id, or a readable line in development.

A logged text may come from a client (a decoded path, a header): in a console line its
control characters are escaped (``\n`` stays two characters), so no client can forge a line
of its own. JSON lines escape them by the format's own rules.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.context import current_request_id
from shared.settings import BaseServiceSettings
from shared.tracing import current_trace_ids

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is
# emitted as a field of its own.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "service", "taskName", "color_message"}
)


class ContextFilter(logging.Filter):
    """Stamps each record with the service name, the current request id and, when tracing
    is on, the current trace and span ids (``trace_id``, ``span_id``) unless the line names
    ids of its own."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = current_request_id()
        ids = current_trace_ids()
        # A line about work whose span has ended names that span's ids itself (``extra``).
        if ids is not None and "trace_id" not in record.__dict__:
            record.trace_id, record.span_id = ids
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": getattr(record, "service", None),
            "request_id": getattr(record, "request_id", None),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators, as escapes.
_CONTROLS = {
    code: ascii(chr(code))[1:-1] for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}
# Marks the lines of a traceback, so none of them reads as a log line of its own.
_CONTINUATION = "\n    | "


def escape_controls(text: str) -> str:
    """``text`` with its control characters written as escapes (``\x1b``, ``\n``)."""
    return text if text.isprintable() else text.translate(_CONTROLS)


class ConsoleFormatter(logging.Formatter):
    """A readable line for `make dev`; the supervisor adds time and process name."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or "-"
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:
            request_id = f"{request_id} trace {trace_id}"
        message = escape_controls(record.getMessage())
        line = f"{record.levelname:<7} {record.name} [{request_id}] {message}"
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for text in details:
            lines = (escape_controls(part) for part in text.splitlines())
            line += _CONTINUATION + _CONTINUATION.join(lines)
        return line


AMQP_CLIENT_LOGGERS = ("aiormq", "aio_pika")


def configure_logging(settings: BaseServiceSettings) -> None:
    """Route every logger (uvicorn's included) through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(settings.service_name))
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else ConsoleFormatter())

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)

    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # RequestContextMiddleware writes the access log, with the request id and duration.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("shared.access").disabled = not settings.access_log
    # The AMQP client's DEBUG lines print whole frames, message bodies (payment tokens)
    # included: never below INFO, whatever the level asked for.
    for name in AMQP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))

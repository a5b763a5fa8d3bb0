from __future__ import annotations

import json
import logging
import sys

import pytest

from shared.context import request_id_var
from shared.logging import ConsoleFormatter, ContextFilter, JsonFormatter


def render(record: logging.LogRecord) -> dict[str, object]:
    ContextFilter("sample").filter(record)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def make_record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sample.logger", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_every_line_is_json_with_the_request_id() -> None:
    token = request_id_var.set("req-0123456789")
    try:
        line = render(make_record("order placed", order_id="o-1"))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-0123456789"
    assert line["service"] == "sample"
    assert line["message"] == "order placed"
    assert line["order_id"] == "o-1"
    assert line["level"] == "info"


def test_outside_a_request_the_id_is_null() -> None:
    assert render(make_record("started"))["request_id"] is None


def test_exceptions_are_one_json_line() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = render(record)
    assert "ValueError: broken" in str(line["exception"])


def test_configure_logging_routes_everything_to_one_json_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from shared.logging import configure_logging

    from .conftest import SampleSettings

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(SampleSettings(log_format="json", log_level="INFO"))
        logging.getLogger("uvicorn.error").info("server up")
        err = capsys.readouterr().err.strip().splitlines()
        assert json.loads(err[-1])["message"] == "server up"
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


FORGED = "/api/v1/products/x\nINFO    shared.access [admin] POST /api/v1/orders 201\x1b[2K\r\u2028"


def console(record: logging.LogRecord) -> str:
    ContextFilter("sample").filter(record)
    return ConsoleFormatter().format(record)


def test_a_console_line_escapes_control_characters_so_a_path_cannot_forge_a_line() -> None:
    line = console(_access_record(FORGED))
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "\u2028" not in line
    assert line == (
        "INFO    shared.access [-] GET /api/v1/products/x\\nINFO    shared.access [admin] "
        "POST /api/v1/orders 201\\x1b[2K\\r\\u2028 404"
    )


def test_printable_text_is_left_as_it_is_in_a_console_line() -> None:
    assert console(_access_record("/api/v1/products/Café-ß 1")).endswith("/Café-ß 1 404")


def test_a_traceback_in_a_console_line_cannot_pose_as_another_line() -> None:
    try:
        raise ValueError("bad path\nERROR   shared.access [-] forged")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    head, *details = console(record).split("\n")
    assert head == "ERROR   x [-] failed"
    assert details
    assert all(line.startswith("    | ") for line in details)


def test_a_json_line_stays_one_valid_json_object_with_the_text_intact() -> None:
    line = JsonFormatter().format(_access_record(FORGED))
    assert "\n" not in line
    assert json.loads(line)["message"] == f"GET {FORGED} 404"


def _access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "shared.access", logging.INFO, __file__, 1, "%s %s %s", ("GET", path, 404), None
    )

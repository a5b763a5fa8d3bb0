from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from shared.cursors import CursorCodec, CursorSettings, InvalidCursor, LimitQuery
from shared.settings import PlaceholderSecretError
from shared.testing.cursors import bad_cursors

OLD_KEY = "old-key-0123456789abcdef0123456789"
NEW_KEY = "new-key-0123456789abcdef0123456789"


class CursorSampleSettings(CursorSettings):
    model_config = SettingsConfigDict(env_prefix="SAMPLE_")


def test_a_cursor_round_trips_to_its_position() -> None:
    codec = CursorCodec([NEW_KEY])
    for position in ["SKU-9", "01a24806-997e-7e86-b6c3-161a6d62c08b", "é/ünïcode ."]:
        assert codec.decode("products", codec.encode("products", position)) == position


def test_a_cursor_reveals_no_key_and_is_short() -> None:
    cursor = CursorCodec([NEW_KEY]).encode("orders", "01a24806-997e-7e86-b6c3-161a6d62c08b")
    assert NEW_KEY not in cursor
    assert len(cursor) < 80
    assert cursor.isascii()
    assert " " not in cursor


@pytest.mark.parametrize(
    "name",
    list(bad_cursors(issued=CursorCodec(["change-me"]).encode("k", "p"), kind="k", position="p")),
)
def test_anything_the_server_did_not_issue_is_an_invalid_cursor(name: str) -> None:
    codec = CursorCodec(["change-me"])
    issued = codec.encode("products", "SKU-9")
    bad = bad_cursors(issued=issued, kind="products", position="SKU-9")[name]
    with pytest.raises(InvalidCursor) as raised:
        codec.decode("products", bad)
    assert raised.value.status == 400
    assert raised.value.type == "/problems/invalid-cursor"


def test_a_cursor_of_one_list_never_pages_another() -> None:
    codec = CursorCodec([NEW_KEY])
    with pytest.raises(InvalidCursor):
        codec.decode("inventory.low-stock", codec.encode("inventory.products", "SKU-9"))


def test_rotation_the_first_key_signs_and_every_key_verifies() -> None:
    before = CursorCodec([OLD_KEY])
    during = CursorCodec([NEW_KEY, OLD_KEY])
    after = CursorCodec([NEW_KEY])
    issued_before = before.encode("orders", "42")
    issued_during = during.encode("orders", "42")

    assert during.decode("orders", issued_before) == "42"  # old cursors survive the rollout
    assert after.decode("orders", issued_during) == "42"  # new cursors are signed by the new key
    assert issued_during != issued_before
    with pytest.raises(InvalidCursor):  # once the old key is dropped, its cursors are refused
        after.decode("orders", issued_before)


def test_the_keys_setting_is_a_comma_separated_list_the_first_signing() -> None:
    settings = CursorSampleSettings(cursor_keys=SecretStr(f" {NEW_KEY} , {OLD_KEY} "))
    issued = CursorCodec([OLD_KEY]).encode("orders", "42")
    assert settings.cursor_codec.decode("orders", issued) == "42"
    assert CursorCodec([NEW_KEY]).decode("orders", settings.cursor_codec.encode("orders", "42"))


def test_the_keys_setting_is_read_from_the_shared_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMMERCE_CURSOR_KEYS", f"{NEW_KEY},{OLD_KEY}")
    settings = CursorSampleSettings()
    assert settings.cursor_keys.get_secret_value() == f"{NEW_KEY},{OLD_KEY}"
    assert NEW_KEY not in repr(settings)


def test_an_empty_keys_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one key"):
        CursorSampleSettings(cursor_keys=SecretStr(" , "))


def _production(**overrides: str) -> CursorSampleSettings:
    return CursorSampleSettings(
        environment="production",
        db_password=SecretStr("s3cure-and-long"),
        broker_url=SecretStr("amqp://shop:k9-broker@rabbit:5672/"),
        **{name: SecretStr(value) for name, value in overrides.items()},  # type: ignore[arg-type]
    )


def test_production_refuses_the_placeholder_cursor_key() -> None:
    with pytest.raises(ValidationError) as caught:
        _production()
    assert "cursor_keys[0]" in str(caught.value)
    assert isinstance(caught.value.errors()[0]["ctx"]["error"], PlaceholderSecretError)


def test_production_refuses_a_placeholder_among_the_rotated_keys() -> None:
    with pytest.raises(ValidationError, match=r"cursor_keys\[1\]"):
        _production(cursor_keys=f"{NEW_KEY},change-me")


def test_production_refuses_a_short_cursor_key() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        _production(cursor_keys="short-but-not-a-placeholder")


def test_production_starts_with_long_cursor_keys() -> None:
    settings = _production(cursor_keys=f"{NEW_KEY},{OLD_KEY}")
    assert settings.cursor_codec.decode("k", settings.cursor_codec.encode("k", "p")) == "p"


def test_a_page_of_limit_plus_one_rows_has_a_cursor_to_the_rest() -> None:
    codec = CursorCodec([NEW_KEY])
    rows = ["a", "b", "c"]
    items, next_cursor = codec.page("letters", rows, limit=2, position=str.upper)
    assert items == ["a", "b"]
    assert next_cursor is not None
    assert codec.after("letters", next_cursor) == "B"


def test_the_last_page_has_no_cursor() -> None:
    codec = CursorCodec([NEW_KEY])
    assert codec.page("letters", ["a", "b"], limit=2, position=str) == (["a", "b"], None)
    assert codec.page("letters", [], limit=2, position=str) == ([], None)


def test_without_a_cursor_a_list_starts_at_its_first_page() -> None:
    codec = CursorCodec([NEW_KEY])
    assert codec.after("letters", None) is None
    assert codec.after_id("orders", None) is None


def test_an_id_cursor_round_trips_and_refuses_a_signed_non_id() -> None:
    codec = CursorCodec([NEW_KEY])
    order_id = uuid.UUID("01a24806-997e-7e86-b6c3-161a6d62c08b")
    assert codec.after_id("orders", codec.encode("orders", str(order_id))) == order_id
    with pytest.raises(InvalidCursor):
        codec.after_id("orders", codec.encode("orders", "not-an-id"))


def _limit_app() -> FastAPI:
    app = FastAPI()

    @app.get("/list")
    async def listing(limit: LimitQuery = 20) -> dict[str, int]:
        return {"limit": limit}

    return app


@pytest.mark.parametrize("spelling", ["5", "05", "100"])
async def test_a_limit_in_decimal_digits_is_read(spelling: str) -> None:
    async with _client(_limit_app()) as client:
        response = await client.get("/list", params={"limit": spelling})
    assert response.json() == {"limit": int(spelling)}


@pytest.mark.parametrize("spelling", [" 5", "+5", "5_0", "\uff15", "", "0", "101", "1e2"])
async def test_any_other_limit_is_a_422(spelling: str) -> None:
    async with _client(_limit_app()) as client:
        response = await client.get("/list", params={"limit": spelling})
    assert response.status_code == 422


def test_the_limit_bounds_stay_in_the_openapi_schema() -> None:
    parameter = _limit_app().openapi()["paths"]["/list"]["get"]["parameters"][0]
    assert parameter["schema"]["minimum"] == 1
    assert parameter["schema"]["maximum"] == 100


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

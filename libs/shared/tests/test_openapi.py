from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Body, FastAPI

from shared.errors import PROBLEM_CONTENT_TYPE, install_error_handlers
from shared.openapi import PROBLEM_REF, install_problem_documentation, problem_responses

PROBLEM_CONTENT = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}}


def _app() -> FastAPI:
    router = APIRouter(responses=problem_responses(401, 503))

    @router.get("/things/{thing_id}", responses=problem_responses((404, "No such thing.")))
    async def read(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @router.post("/things")
    async def create(name: str = Body(embed=True)) -> dict[str, str]:
        return {"name": name}

    app = FastAPI()
    install_error_handlers(app)
    install_problem_documentation(app)
    app.include_router(router)
    return app


def _responses(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"][path][method]["responses"]
    return responses


def test_declared_statuses_are_problem_json_with_their_description() -> None:
    document = _app().openapi()
    responses = _responses(document, "/things/{thing_id}", "get")
    assert set(responses) == {"200", "401", "404", "422", "503"}
    assert responses["404"] == {"description": "No such thing.", "content": PROBLEM_CONTENT}
    assert responses["401"]["content"] == PROBLEM_CONTENT
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["503"]["headers"]


def test_fastapis_own_422_becomes_the_problem_json_the_handlers_send() -> None:
    document = _app().openapi()
    assert _responses(document, "/things/{thing_id}", "get")["422"]["content"] == PROBLEM_CONTENT
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"title", "status", "detail"}
    assert "FieldError" in schemas


def test_a_route_with_a_body_documents_the_400_of_an_unreadable_body() -> None:
    responses = _responses(_app().openapi(), "/things", "post")
    assert responses["400"]["content"] == PROBLEM_CONTENT


async def test_an_unreadable_body_is_answered_as_documented() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/things", content=b"\x80\x81", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE

"""Catalog HTTP routes: public reads (cacheable, with ETags), admin writes."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel

from inventory.catalog import public, service
from inventory.catalog.cache import CatalogCache
from inventory.catalog.schemas import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
)
from inventory.deps import SessionDep, SessionmakerDep, SettingsDep
from inventory.products.models import SKU_PATTERN
from shared.auth import AdminDep, OptionalPrincipalDep, Principal
from shared.cursors import CursorQuery, LimitQuery
from shared.openapi import problem_responses

# Every route reads the database (503 while it is out); a token, when sent, must be valid.
router = APIRouter(
    prefix="/api/v1/products", tags=["catalog"], responses=problem_responses(401, 503)
)

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]


async def _catalog_cache(request: Request) -> CatalogCache:
    cache: CatalogCache = request.app.state.catalog_cache
    return cache


# Here rather than in ``inventory.deps``, which every domain's routes import: only the
# catalog knows its cache.
CatalogCacheDep = Annotated[CatalogCache, Depends(_catalog_cache)]

# What an admin sees may differ from the public view (inactive products), and must not be
# stored by a shared cache.
PRIVATE_CACHE = "private, no-cache"


def _cache_control(principal: Principal | None, max_age: int) -> str:
    if principal is not None:
        return PRIVATE_CACHE
    return f"public, max-age={max_age}"


def _strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison, a list of tags, or ``*``."""
    if if_none_match is None:
        return False
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in candidates)


def _json(model: BaseModel, *, status_code: int = 200, headers: dict[str, str]) -> Response:
    return Response(
        model.model_dump_json().encode(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


@router.get("", response_model=ProductPage, responses=problem_responses(400))
async def list_products(
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    catalog_cache: CatalogCacheDep,
    principal: OptionalPrincipalDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> Response:
    """Products in sku order; admins also see inactive ones."""
    if principal is not None and principal.is_admin:
        page = await service.list_products(
            session=session,
            settings=settings,
            limit=limit,
            cursor=cursor,
            text=q,
            include_inactive=True,
        )
        body = page.model_dump_json().encode()
    else:
        # The same page for every caller who is not an admin: shared through the cache.
        public.check_cursor(settings, cursor)
        body = await catalog_cache.page(
            limit,
            cursor,
            q,
            lambda: public.page_body(sessionmaker, settings, limit=limit, cursor=cursor, text=q),
        )
    cache = _cache_control(principal, settings.catalog_cache_max_age_seconds)
    return Response(
        body,
        media_type="application/json",
        headers={"Cache-Control": cache, "Vary": "Authorization"},
    )


@router.get(
    "/{sku}",
    response_model=ProductOut,
    responses={
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **problem_responses((404, "No such product, or an inactive one and not an admin.")),
    },
)
async def read_product(
    sku: SkuPath,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    catalog_cache: CatalogCacheDep,
    principal: OptionalPrincipalDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    if principal is not None and principal.is_admin:
        product = await service.get_product(session=session, sku=sku, include_inactive=True)
        body = product.model_dump_json().encode()
    else:
        # The same body for every caller who is not an admin: shared through the cache.
        body = await catalog_cache.product(sku, lambda: public.product_body(sessionmaker, sku))
    etag = _strong_etag(body)
    headers = {
        "ETag": etag,
        "Cache-Control": _cache_control(principal, settings.catalog_cache_max_age_seconds),
        "Vary": "Authorization",
    }
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=ProductOut,
    responses=problem_responses(403, (409, "The sku is taken."), 413),
)
async def create_product(
    data: ProductCreate, session: SessionDep, settings: SettingsDep, admin: AdminDep
) -> Response:
    product = await service.create_product(
        session=session, settings=settings, data=data, actor=str(admin.user_id)
    )
    headers = {"Location": f"{router.prefix}/{product.sku}"}
    return _json(product, status_code=201, headers=headers)


@router.patch("/{sku}", response_model=ProductOut, responses=problem_responses(403, 404, 413))
async def update_product(
    sku: SkuPath,
    changes: ProductUpdate,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
) -> ProductOut:
    return await service.update_product(
        session=session, settings=settings, sku=sku, changes=changes, actor=str(admin.user_id)
    )

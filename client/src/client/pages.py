"""Rendering pages, and loading a page's data beside the signed-in user."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from client.api import Api, ApiError
from client.models import User

T = TypeVar("T")


class PageError(ApiError):
    """An API error while loading a page, with what the header needs to render."""

    def __init__(self, error: ApiError, user: User | None, user_known: bool) -> None:
        super().__init__(error.status_code, error.messages)
        self.user = user
        self.user_known = user_known


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    user: User | None,
    user_known: bool = True,
    status_code: int = 200,
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        template,
        {**context, "user": user, "user_known": user_known},
        status_code=status_code,
    )


def render_error(
    request: Request,
    status_code: int,
    messages: list[str],
    *,
    user: User | None = None,
    user_known: bool = False,
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"status_code": status_code, "messages": messages},
        user=user,
        user_known=user_known,
        status_code=status_code,
    )


async def load_page(api: Api, data: Awaitable[T]) -> tuple[User | None, T]:
    """The signed-in user and the page's data, fetched together.

    When the data's call fails, the error page still shows the right header.
    """
    user, result = await asyncio.gather(api.current_user(), data, return_exceptions=True)
    if isinstance(user, ApiError):
        if isinstance(result, ApiError):
            raise PageError(result, None, user_known=False) from result
        raise PageError(user, None, user_known=False) from user
    if isinstance(user, BaseException):
        raise user
    if isinstance(result, ApiError):
        raise PageError(result, user, user_known=True) from result
    if isinstance(result, BaseException):
        raise result
    return user, result


async def load_user(api: Api) -> User | None:
    """The signed-in user of a page that needs no other data."""
    try:
        return await api.current_user()
    except ApiError as exc:
        raise PageError(exc, None, user_known=False) from exc

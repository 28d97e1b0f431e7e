"""JSON answers for the errors of the app's JSON endpoints: 404 and CSRF.

A JSON client of the sessions page, the re-authentication view or the idle
warning's views must get a JSON body for an unknown id and for a refused
CSRF token, not the site's HTML error pages. The app cannot change the
project's ``CSRF_FAILURE_VIEW``, so its POST views check CSRF themselves:
they are exempt from the project's ``CsrfViewMiddleware`` and run Django's
own ``CsrfViewMiddleware`` as a decorator instead (what ``csrf_protect``
does), with exactly its checks (token, Origin, Referer, trusted origins,
logging). Only its refusal is answered differently: JSON for a JSON client,
the project's failure view for everybody else, as before.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import Http404, HttpRequest, HttpResponseForbidden, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import decorator_from_middleware_with_args

from django_sessionkit.http import wants_json

View = TypeVar("View", bound=Callable[..., Any])


def _answers_json(request: HttpRequest, only_json: bool) -> bool:
    return only_json or wants_json(request)


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, refusing JSON clients with a JSON body."""

    def __init__(
        self, get_response: Callable[..., Any], only_json: bool = False
    ) -> None:
        super().__init__(get_response)
        self.only_json = only_json

    def process_view(
        self,
        request: HttpRequest,
        callback: Callable[..., Any],
        callback_args: tuple[Any, ...],
        callback_kwargs: dict[str, Any],
    ) -> HttpResponseForbidden | None:
        refused = super().process_view(
            request, callback, callback_args, callback_kwargs
        )
        if refused is None or not _answers_json(request, self.only_json):
            return refused
        # Django logged the refusal with its reason; the body stays generic,
        # as Django's own page is without DEBUG.
        return HttpResponseForbidden(
            json.dumps({"error": "csrf_failed"}), content_type="application/json"
        )


_csrf_check = decorator_from_middleware_with_args(_CsrfCheck)


def json_errors(*, only_json: bool = False) -> Callable[[View], View]:
    """Protect a view from CSRF as ``csrf_protect`` does, and answer a JSON
    client's CSRF failure (403) and ``Http404`` (404) with a JSON body
    (``{"error": "csrf_failed"}``, ``{"error": "not_found"}``).

    A client wants JSON as :func:`~django_sessionkit.http.wants_json`
    says, or always with ``only_json`` (views that answer nothing else).
    Put it where ``csrf_protect`` would go; it works on sync views.
    """

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def not_found_as_json(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                return view(request, *args, **kwargs)
            except Http404:
                if not _answers_json(request, only_json):
                    raise
                return JsonResponse({"error": "not_found"}, status=404)

        checked: Any = _csrf_check(only_json)(not_found_as_json)
        # The project's CsrfViewMiddleware would refuse first, with its own
        # failure view: it leaves the check, unchanged, to this decorator.
        checked.csrf_exempt = True
        return checked  # type: ignore[no-any-return]

    return decorator

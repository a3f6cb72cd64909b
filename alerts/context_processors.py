"""What base.html's navigation needs on every page, computed only if the page asks for it."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from cameras.models import Role
from cameras.selectors import best_role


def navigation(request: HttpRequest) -> dict[str, Any]:
    """`manages_a_site`: whether to show the managers' links (Statistics, Audit, Model);
    `reviews_a_site`: whether to offer reviewers' tools (ticking alerts for a case). Lazy: one small
    query, made only when a template reads either, at most once a request."""
    user = getattr(request, "user", None)
    if user is None:
        return {"manages_a_site": False, "reviews_a_site": False}
    best: list[Role | None] = []

    def at_least(role: Role) -> bool:
        if not best:
            best.append(best_role(user=user))
        return best[0] is not None and best[0].rank >= role.rank

    return {"manages_a_site": SimpleLazyObject(lambda: at_least(Role.MANAGER)),
            "reviews_a_site": SimpleLazyObject(lambda: at_least(Role.REVIEWER))}

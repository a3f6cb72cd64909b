"""Reads about sites and who may do what at them. Every permission check in the project starts here."""
from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from cameras.models import ROLE_RANK, Camera, Role, Site, SiteMembership

AnyUser = User | AnonymousUser  # request.user's type; User is settings.AUTH_USER_MODEL, Django's default


def site_list_for(*, user: AnyUser, min_role: Role = Role.VIEWER) -> QuerySet[Site]:
    """The sites where the user holds at least `min_role`; every site for a superuser."""
    if not user.is_authenticated or not user.is_active:
        return Site.objects.none()
    if getattr(user, "is_superuser", False):
        return Site.objects.all()
    return Site.objects.filter(memberships__user=user, memberships__role__in=min_role.roles_at_least()).distinct()


def role_at_site(*, user: AnyUser, site_id: int) -> Role | None:
    """The user's role at one site (a superuser counts as manager everywhere), or None."""
    if not user.is_authenticated or not user.is_active:
        return None
    if getattr(user, "is_superuser", False):
        return Role.MANAGER
    role = SiteMembership.objects.filter(user=user, site_id=site_id).values_list("role", flat=True).first()
    return Role(role) if role else None


def best_role(*, user: AnyUser) -> Role | None:
    """The strongest role the user holds at any site (manager for a superuser, once a site exists)."""
    if not user.is_authenticated or not user.is_active:
        return None
    if getattr(user, "is_superuser", False):
        return Role.MANAGER if Site.objects.exists() else None
    roles = set(SiteMembership.objects.filter(user=user).values_list("role", flat=True).distinct())
    return max((Role(role) for role in roles), key=lambda role: ROLE_RANK[role], default=None)


def has_role(*, user: AnyUser, site_id: int, min_role: Role) -> bool:
    role = role_at_site(user=user, site_id=site_id)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[min_role]


def camera_list_for(*, user: AnyUser, min_role: Role = Role.VIEWER) -> QuerySet[Camera]:
    return Camera.objects.filter(site__in=site_list_for(user=user, min_role=min_role)).select_related("site")


class CameraNotFound(LookupError):
    """A camera named on a command line matches no camera, or several."""


def camera_by_label(text: str) -> Camera:
    """The camera an operator names on a command line: its name, or 'Site / Camera' when names repeat."""
    queryset = Camera.objects.select_related("site")
    matches = list(queryset.filter(name=text))
    if not matches and "/" in text:
        site, _, name = (part.strip() for part in text.rpartition("/"))
        matches = list(queryset.filter(site__name=site, name=name))
    if not matches:
        raise CameraNotFound(f"no camera named '{text}': give the name as in the admin, or 'Site / Camera'")
    if len(matches) > 1:
        sites = ", ".join(f"'{c.site.name} / {c.name}'" for c in matches)
        raise CameraNotFound(f"'{text}' names {len(matches)} cameras ({sites}): say which, as 'Site / Camera'")
    return matches[0]

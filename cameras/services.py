"""Writes to sites, cameras and memberships. Commands and the admin call these."""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from alerts.audit import audit_record
from alerts.models import AuditAction
from cameras.models import Camera, Role, Site, SiteMembership
from shoplift.masking import mask_url

CHANNEL_PLACEHOLDER = "{channel}"


@dataclass(frozen=True)
class CameraUpsert:
    camera: Camera
    created: bool


def channel_url(template: str, channel: int) -> str:
    return template.replace(CHANNEL_PLACEHOLDER, str(channel))


def _field_errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


@transaction.atomic
def cameras_upsert_from_template(
    *, site: Site, url_template: str, channels: list[int], detect_url_template: str = "",
    name_template: str = "Channel {channel}",
) -> list[CameraUpsert]:
    """Create or update one camera per DVR channel, keyed by (site, channel). Safe to re-run.

    Names are only set on creation, so a camera renamed in the admin keeps its name. All or nothing:
    one invalid channel leaves the database unchanged.
    """
    if len(channels) > 1 and CHANNEL_PLACEHOLDER not in url_template:
        raise ValidationError(
            f"The URL template '{mask_url(url_template)}' has no {CHANNEL_PLACEHOLDER}: every channel would get the same "
            f"stream. Put {CHANNEL_PLACEHOLDER} where the DVR's channel number goes, e.g. rtsp://user:pass@dvr/ch{CHANNEL_PLACEHOLDER}."
        )
    results: list[CameraUpsert] = []
    for channel in channels:
        camera = Camera.objects.filter(site=site, channel=channel).first()
        created = camera is None
        if camera is None:
            camera = Camera(site=site, channel=channel, name=channel_url(name_template, channel))
        camera.stream_url = channel_url(url_template, channel)
        camera.detect_url = channel_url(detect_url_template, channel) if detect_url_template else ""
        try:
            camera.full_clean()
        except ValidationError as exc:
            raise ValidationError(f"Channel {channel}: {_field_errors(exc)}") from None
        camera.save()
        results.append(CameraUpsert(camera=camera, created=created))
    return results


@transaction.atomic
def staff_user_upsert(*, username: str, site: Site, role: Role, password: str | None, email: str = "") -> tuple[User, bool]:
    """Create the user or update their role at `site`. A new user needs a password; an existing one keeps theirs if None."""
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    created = user is None
    if user is None:
        if not password:
            raise ValidationError(f"User '{username}' does not exist yet, so a password is needed.")
        user = user_model(username=username, email=email)
    elif email:
        user.email = email
    if password:
        validate_password(password, user)
        user.set_password(password)
    with transaction.atomic():
        user.save()
        previous = SiteMembership.objects.filter(user=user, site=site).values_list("role", flat=True).first()
        membership, _ = SiteMembership.objects.update_or_create(user=user, site=site, defaults={"role": role})
        _sync_staff_flag(user)
        if previous != role or created or password:
            changes = [f"role {previous or 'none'} -> {role}"] if previous != role else []
            changes += ["account created"] if created else ["password set"] if password else []
            audit_record(action=AuditAction.ADMIN_CHANGE if previous else AuditAction.ADMIN_ADD, site_id=site.pk,
                         username="manage.py create_staff", object_type="sitemembership", object_id=membership.pk,
                         summary=f"create_staff: {username} at {site.name}: {', '.join(changes)}",
                         detail={"user": username, "site": site.name, "old_role": previous, "new_role": role,
                                 "created": created, "password_set": bool(password)})
    return user, created


def _sync_staff_flag(user: User) -> None:
    """Managers use the Django admin, so they are staff; nobody else is, unless a superuser."""
    is_manager = SiteMembership.objects.filter(user=user, role=Role.MANAGER).exists()
    wanted = user.is_superuser or is_manager
    if user.is_staff != wanted:
        user.is_staff = wanted
        user.save(update_fields=["is_staff"])

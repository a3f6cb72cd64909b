import django_stubs_ext

# Lets Django's generic classes be subscripted at run time (ModelAdmin[Camera], ModelChoiceField[Zone]),
# as mypy sees them. Here because every entry point imports this package before any app module.
django_stubs_ext.monkeypatch()

from shoplift.celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)

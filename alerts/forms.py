"""The alert list's filters, the review form and the case forms."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

from alerts.models import Case, CaseOutcome, ClipStatus, ReviewStatus
from alerts.selectors import AlertFilters
from cameras.models import Camera, Site, Zone
from cameras.selectors import AnyUser, camera_list_for, site_list_for


def _plausible(day: date | None) -> date | None:
    if day is not None and not 2000 <= day.year <= 2100:
        raise forms.ValidationError("Pick a date between 2000 and 2100.")
    return day


class _CameraChoiceField(forms.ModelChoiceField[Camera]):
    def label_from_instance(self, obj: Camera) -> str:
        return f"{obj.site.name} / {obj.name}"


class _ZoneChoiceField(forms.ModelChoiceField[Zone]):
    def label_from_instance(self, obj: Zone) -> str:
        return f"{obj.camera.name} / {obj.name}"


class AlertFilterForm(forms.Form):
    """GET filters. A bad value invalidates only its own field; the list ignores it and says so."""

    site = forms.ModelChoiceField(queryset=Site.objects.none(), required=False, empty_label="All sites")
    camera = _CameraChoiceField(queryset=None, required=False, empty_label="All cameras")
    zone = _ZoneChoiceField(queryset=Zone.objects.none(), required=False, empty_label="All zones")
    event_type = forms.ChoiceField(required=False, label="Event")
    review_status = forms.ChoiceField(choices=[("", "Any review")] + ReviewStatus.choices, required=False,
                                      label="Review")
    clip_status = forms.ChoiceField(choices=[("", "Any clip")] + ClipStatus.choices, required=False, label="Clip")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    min_score = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Min. score",
                                 widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": "0–1"}))

    def __init__(self, *args: Any, user: AnyUser, event_types: list[str] | None = None, **kwargs: Any) -> None:
        """`event_types`: the choices to offer; None (polling) accepts any well-formed event type."""
        super().__init__(*args, **kwargs)
        self.sites = list(site_list_for(user=user))
        cameras = camera_list_for(user=user)
        # self.fields holds this form's copies of the fields declared above, typed only as Field.
        site_field, camera_field, zone_field = self.fields["site"], self.fields["camera"], self.fields["zone"]
        assert isinstance(site_field, forms.ModelChoiceField) and isinstance(camera_field, _CameraChoiceField)
        assert isinstance(zone_field, _ZoneChoiceField)
        site_field.queryset = site_list_for(user=user)
        camera_field.queryset = cameras
        zone_field.queryset = Zone.objects.filter(camera__in=cameras).select_related("camera__site")
        if event_types is None:
            self.fields["event_type"] = forms.CharField(required=False, max_length=64, label="Event",
                                                        validators=[RegexValidator(r"^[\w.-]+$")])
        else:
            event_type_field = self.fields["event_type"]
            assert isinstance(event_type_field, forms.ChoiceField)
            event_type_field.choices = [("", "Any event")] + [
                (e, e.replace("_", " ").capitalize()) for e in event_types]

    def clean_date_from(self) -> date | None:
        return _plausible(self.cleaned_data.get("date_from"))

    def clean_date_to(self) -> date | None:
        return _plausible(self.cleaned_data.get("date_to"))

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def ignored(self) -> list[str]:
        """One readable line per filter that was left out because its value was bad."""
        return [f"{self.fields[name].label or name.replace('_', ' ').capitalize()} filter ignored: {' '.join(map(str, errors))}"
                if name in self.fields else " ".join(map(str, errors))
                for name, errors in self.errors.items()]

    def _zone_info(self, site: Site | None) -> ZoneInfo:
        """Dates are days in the chosen site's time zone (or the only site's), else the deployment's."""
        if site is None and len(self.sites) == 1:
            site = self.sites[0]
        return ZoneInfo(site.time_zone if site is not None else settings.TIME_ZONE)

    def filters(self) -> AlertFilters:
        """The valid filters; call after is_valid()."""
        data = getattr(self, "cleaned_data", {})
        site, camera, zone = data.get("site"), data.get("camera"), data.get("zone")
        tz = self._zone_info(site)

        def day_start(day: date | None, extra_days: int = 0) -> datetime | None:
            return datetime.combine(day + timedelta(days=extra_days), time.min, tzinfo=tz) if day else None

        return AlertFilters(
            site_id=site.pk if site else None,
            camera_id=camera.pk if camera else None,
            zone_id=zone.pk if zone else None,
            event_type=data.get("event_type") or None,
            review_status=data.get("review_status") or None,
            clip_status=data.get("clip_status") or None,
            detected_from=day_start(data.get("date_from")),
            detected_until=day_start(data.get("date_to"), extra_days=1),
            min_score=data.get("min_score"),
        )

    def active_count(self) -> int:
        return sum(1 for name, value in getattr(self, "cleaned_data", {}).items() if value not in (None, ""))


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[(ReviewStatus.CONFIRMED, "Confirm"), (ReviewStatus.DISMISSED, "Dismiss")],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text="What you saw; kept with the alert.")


class CaseForm(forms.ModelForm[Case]):
    """What a reviewer records about a case; alerts, status and closing have their own buttons."""

    class Meta:
        model = Case
        fields = ["title", "outcome", "estimated_value", "items", "person_description", "police_reference", "notes"]
        widgets = {
            "title": forms.TextInput(attrs={"placeholder": "e.g. Two bottles of spirits concealed in a bag"}),
            "estimated_value": forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
            "items": forms.Textarea(attrs={"rows": 3}),
            "person_description": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {"notes": "For the store's staff; not part of the police export."}


class CaseCloseForm(forms.Form):
    """Closing: the outcome, when the case does not have one yet or it changes on closing."""

    outcome = forms.ChoiceField(choices=[("", "Choose the outcome…")]
                                + [(value, label) for value, label in CaseOutcome.choices if value], required=False)

"""Admin for the learned per-site models: the training history, the switch, what they suppressed,
and the threshold suggestions. Managers see and act only on the sites they manage.

Models are trained by `manage.py train_detector`, never added or edited here: the only change is
*Switch off* / *Switch on* (audited). *Threshold suggestions* (a link on the models' list) shows
tune_thresholds' suggestions for one site and applies one to its zone or camera (audited).
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from alerts.auth import client_ip
from cameras.admin import SiteScopedAdmin, managed_sites, user_manages
from cameras.models import Site
from detection.learning.services import SuggestionChanged, learned_model_switch, threshold_apply
from detection.learning.thresholds import DEFAULT_RECALL
from detection.learning.train import report_text
from detection.learning.tuning import threshold_suggestions
from detection.models import LearnedModel, SuppressedEvent


@admin.register(LearnedModel)
class LearnedModelAdmin(SiteScopedAdmin[LearnedModel]):
    allow_add = False
    allow_delete = False  # the history stays; a model is replaced by training a new one
    list_display = ("__str__", "created_at", "state", "examples", "aucs", "threshold", "suppressed_count")
    list_filter = (("site", admin.RelatedOnlyFieldListFilter), "deployed", "enabled")
    list_select_related = ("site",)
    actions = ("switch_off", "switch_on")
    change_list_template = "admin/detection/learnedmodel/change_list.html"
    fields = ("site", "version", "created_at", "trained_by", "state", "enabled", "threshold", "suppressed_count",
              "last_suppressed_at", "the_report", "file_name", "sha256")
    readonly_fields = fields

    @admin.display(description="state")
    def state(self, obj: LearnedModel) -> str:
        if obj.deployed:
            return "deployed, on" if obj.enabled else "deployed, switched off"
        if obj.refused_reason:
            return "refused by the gate"
        return "replaced"

    @admin.display(description="AUC model / rules")
    def aucs(self, obj: LearnedModel) -> str:
        model, rules = obj.report.get("model") or {}, obj.report.get("rules") or {}
        if model.get("auc") is None or rules.get("auc") is None:
            return "-"
        return f"{model['auc']:.2f} / {rules['auc']:.2f}"

    @admin.display(description="report")
    def the_report(self, obj: LearnedModel) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', report_text(obj))

    @admin.action(description="Switch off the selected models (their sites' events are raised on rule scores)")
    def switch_off(self, request: HttpRequest, queryset: QuerySet[LearnedModel]) -> None:
        self._switch(request, queryset, enabled=False)

    @admin.action(description="Switch on the selected models")
    def switch_on(self, request: HttpRequest, queryset: QuerySet[LearnedModel]) -> None:
        self._switch(request, queryset, enabled=True)

    def _switch(self, request: HttpRequest, queryset: QuerySet[LearnedModel], *, enabled: bool) -> None:
        changed = [m for m in queryset.select_related("site") if self._manages(request, m) and learned_model_switch(
            model=m, enabled=enabled, user=request.user, ip_address=client_ip(request))]
        state = "on" if enabled else "off"
        self.message_user(request, f"{len(changed)} model(s) switched {state}; the detectors follow within "
                                   "DETECTOR_RELOAD_SECONDS.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        own = [path("thresholds/", self.admin_site.admin_view(self.thresholds_view),
                    name="detection_learnedmodel_thresholds")]
        return own + super().get_urls()

    def thresholds_view(self, request: HttpRequest) -> HttpResponse:
        """One site's threshold suggestions at a chosen recall; POST applies one."""
        sites = list(managed_sites(request) if not request.user.is_superuser else Site.objects.all())
        if not self.has_module_permission(request) or not sites:
            raise PermissionDenied
        site = next((s for s in sites if str(s.pk) == request.GET.get("site", "")), sites[0])
        recall = _recall(request.POST.get("recall") or request.GET.get("recall"))
        groups = threshold_suggestions(site=site, recall=recall)
        if request.method == "POST":
            if not user_manages(request, site.pk):
                raise PermissionDenied
            group = next((g for g in groups if g.key == request.POST.get("key")), None)
            try:
                value = float(request.POST.get("value", ""))
            except ValueError:
                value = -1.0
            if group is None:
                self.message_user(request, "That suggestion no longer exists.", messages.ERROR)
            else:
                try:
                    threshold_apply(group=group, value=value, user=request.user, ip_address=client_ip(request))
                except SuggestionChanged as exc:
                    self.message_user(request, str(exc), messages.ERROR)
                else:
                    self.message_user(request, f"The {group.target} is now {value:.2f}; the detectors follow within "
                                               "DETECTOR_RELOAD_SECONDS.", messages.SUCCESS)
            url = reverse("admin:detection_learnedmodel_thresholds")
            return HttpResponseRedirect(f"{url}?site={site.pk}&recall={recall}")
        context: dict[str, Any] = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Threshold suggestions",
            "sites": sites, "site": site, "recall": recall, "groups": groups,
        }
        return TemplateResponse(request, "admin/detection/threshold_suggestions.html", context)


def _recall(raw: str | None) -> float:
    try:
        value = float(raw) if raw else DEFAULT_RECALL
    except ValueError:
        return DEFAULT_RECALL
    return value if 0.0 < value <= 1.0 else DEFAULT_RECALL


@admin.register(SuppressedEvent)
class SuppressedEventAdmin(SiteScopedAdmin[SuppressedEvent]):
    """What the learned models suppressed: read only."""

    site_path = "camera__site"
    allow_add = False
    allow_delete = False
    list_display = ("suppressed_at", "camera", "zone_name", "event_type", "rule_score", "learned_score", "threshold",
                    "model")
    list_filter = (("camera__site", admin.RelatedOnlyFieldListFilter), "event_type")
    list_select_related = ("camera__site", "model__site")
    date_hierarchy = "suppressed_at"
    readonly_fields = ("model", "camera", "zone_name", "event_type", "rule_score", "learned_score", "threshold",
                       "event_start", "suppressed_at")
    exclude = ("track",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

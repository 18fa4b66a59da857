"""Experiments admin: variants and shadows inline, Start / Pause / Stop /
Promote winner / Resume paused arms actions, statistics read-only on the
change page, and the change history (django-simple-history). Every change
goes through experiments.services, which validates it (weights sum to 1,
versions of the model that pass their integrity check, one running
experiment per model) and records it."""

from django import forms
from django.contrib import admin, messages
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from simple_history.admin import SimpleHistoryAdmin

from experiments import selectors, services
from experiments.models import (
    AllocationRecord,
    AuditEntry,
    Experiment,
    ShadowVersion,
    Variant,
)
from mlserving.errors import ApplicationError


def _live_rows(formset) -> list[dict]:
    return [
        form.cleaned_data
        for form in formset.forms
        if form.cleaned_data and not form.cleaned_data.get("DELETE")
    ]


class VariantFormSet(BaseInlineFormSet):
    """Checks the arms with the service's own rules before anything is
    saved: the form shows the error instead of a half-saved experiment."""

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        rows = sorted(_live_rows(self), key=lambda r: r.get("position") or 0)
        model = getattr(self.instance, "model", None)
        if model is None:
            return
        try:
            services.experiment_spec_validate(
                model=model,
                spec=services.ExperimentSpec(
                    variants=[(r["version"], r["weight"]) for r in rows]
                ),
                strategy=self.instance.strategy,
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None


class VariantInline(admin.TabularInline):
    model = Variant
    formset = VariantFormSet
    extra = 0
    min_num = 2
    fields = ["position", "version", "weight", "allocation", "paused", "paused_reason"]
    readonly_fields = ["allocation", "paused", "paused_reason"]
    ordering = ["position", "id"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "version":
            field.queryset = field.queryset.select_related("model")
        return field


class ShadowInline(admin.TabularInline):
    model = ShadowVersion
    extra = 0
    fields = ["version", "mirror_percent"]


class AuditInline(admin.TabularInline):
    model = AuditEntry
    extra = 0
    can_delete = False
    fields = ["at", "kind", "arm", "message", "actor"]
    readonly_fields = fields
    verbose_name_plural = "audit (guardrail alerts, promotions, status changes)"

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-at", "-id")


@admin.register(Experiment)
class ExperimentAdmin(SimpleHistoryAdmin):
    list_display = ["name", "model", "status", "strategy", "arms", "started_at"]
    list_filter = ["status", "strategy", "model"]
    search_fields = ["name", "description"]
    inlines = [VariantInline, ShadowInline, AuditInline]
    actions = ["start", "pause", "stop", "promote", "resume_arms"]
    readonly_fields = [
        "status",
        "salt",
        "started_at",
        "stopped_at",
        "created_by",
        "statistics",
        "allocation_history",
    ]
    fieldsets = [
        (None, {"fields": ["name", "model", "description", "status", "strategy"]}),
        (
            "Assignment",
            {"fields": ["subject_key", "salt", "reward", "min_share"]},
        ),
        (
            "Weighted (bandit) penalties",
            {
                "fields": ["error_penalty", "latency_penalty_per_ms"],
                "classes": ["collapse"],
            },
        ),
        (
            "Guardrails",
            {
                "fields": [
                    "max_error_rate",
                    "max_p99_latency_ms",
                    "min_requests",
                    "min_accuracy",
                    "min_labels",
                    "auto_promote",
                ]
            },
        ),
        (
            "Results",
            {
                "fields": [
                    "started_at",
                    "stopped_at",
                    "created_by",
                    "statistics",
                    "allocation_history",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None:
            fields += ["name", "model"]
        return fields

    @admin.display(description="arms")
    def arms(self, obj):
        return ", ".join(
            f"{v.version.version} {v.weight:g}" + (" (paused)" if v.paused else "")
            for v in obj.variants.select_related("version")
        )

    @admin.display(description="statistics")
    def statistics(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        report = selectors.experiment_report(experiment=obj)
        stats = report["statistics"]
        by_name = {a["name"]: a for a in stats.get("arms", [])}
        rows = []
        for arm in report["arms"]:
            s = by_name.get(arm["arm"], {})
            versus = s.get("versus_control") or {}
            interval = s.get("conversion_interval") or [None, None]
            rows.append(
                (
                    arm["arm"] + (" (control)" if arm["control"] else ""),
                    arm["requests"],
                    _pct(arm["share"]),
                    _pct(arm["error_rate"]),
                    _num(arm["latency_p99_ms"]),
                    f"{_pct(arm['conversion_rate'])} [{_pct(interval[0])}, "
                    f"{_pct(interval[1])}]",
                    _pct(arm["accuracy"]),
                    _num(versus.get("z_p_value"), 4),
                    _num(versus.get("msprt_p_value"), 4),
                    "paused: " + arm["paused_reason"] if arm["paused"] else "",
                )
            )
        srm = stats.get("sample_ratio_mismatch") or {}
        header = mark_safe(  # a constant
            "<tr><th>arm</th><th>requests</th><th>share</th><th>errors</th>"
            "<th>p99 ms</th><th>conversion [95% CI]</th><th>accuracy</th>"
            "<th>z-test p</th><th>mSPRT p</th><th></th></tr>"
        )
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 10 + "</tr>", rows)
        shadows = format_html_join(
            "",
            "<p>shadow {}: {} mirrored, agreement {}, p99 {} ms</p>",
            (
                (
                    s["version"],
                    s["requests"],
                    _pct(s["agreement_rate"]),
                    _num(s["latency_p99_ms"]),
                )
                for s in report["shadows"]
            ),
        )
        return format_html(
            '<table class="experiment-stats">{}{}</table><p>Sample ratio check: '
            "{}{}</p>{}",
            header,
            body,
            f"p = {_num(srm.get('p_value'), 4)}"
            if srm.get("applicable")
            else f"not applicable ({srm.get('reason', 'no arms')})",
            " — MISMATCH" if srm.get("flagged") else "",
            shadows,
        )

    @admin.display(description="allocation history (latest 20)")
    def allocation_history(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        records = AllocationRecord.objects.filter(experiment=obj)[:20]
        return (
            format_html_join(
                "",
                "<div>{}: {}</div>",
                ((r.computed_at.strftime("%H:%M:%S"), r.shares) for r in records),
            )
            or "-"
        )

    # --- saving goes through the service ------------------------------------

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        obj._history_user = request.user
        obj.save()

    def save_related(self, request, form, formsets, change):
        experiment = form.instance
        spec_variants, spec_shadows = [], []
        for formset in formsets:
            if formset.model is Variant:
                rows = sorted(_live_rows(formset), key=lambda r: r.get("position") or 0)
                spec_variants = [(r["version"], r["weight"]) for r in rows]
            elif formset.model is ShadowVersion:
                spec_shadows = [
                    (r["version"], r["mirror_percent"]) for r in _live_rows(formset)
                ]
        for formset in formsets:
            # What the admin's change message reads; the service, not the
            # formsets, saves the rows.
            formset.new_objects, formset.changed_objects = [], []
            formset.deleted_objects = []
        form.save_m2m()
        try:
            services.experiment_save(
                model=experiment.model,
                experiment=experiment,
                spec=services.ExperimentSpec(
                    variants=spec_variants,
                    strategy=experiment.strategy,
                    shadows=spec_shadows,
                ),
                user=request.user,
                reason="admin",
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            raise _Rollback(exc) from exc

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Rollback:
            # A rule only the whole experiment can check (say, a shadow that
            # is also an arm): the view's transaction rolled back, and the
            # form comes back with the message.
            return HttpResponseRedirect(request.get_full_path())

    # --- actions ------------------------------------------------------------

    def _each(self, request, queryset, action, done: str):
        for experiment in queryset:
            try:
                action(experiment=experiment, user=request.user, reason="admin")
            except ApplicationError as exc:
                self.message_user(
                    request, f"{experiment.name}: {exc.message}", messages.ERROR
                )
            else:
                self.message_user(request, f"{experiment.name}: {done}.")

    @admin.action(description="Start (run) the selected experiments")
    def start(self, request, queryset):
        self._each(request, queryset, services.experiment_start, "running")

    @admin.action(description="Pause the selected experiments")
    def pause(self, request, queryset):
        self._each(request, queryset, services.experiment_pause, "paused")

    @admin.action(description="Stop (complete) the selected experiments")
    def stop(self, request, queryset):
        self._each(request, queryset, services.experiment_stop, "completed")

    @admin.action(description="Promote the winner (sequential test) and complete")
    def promote(self, request, queryset):
        self._each(request, queryset, services.experiment_promote, "winner promoted")

    @admin.action(description="Resume paused arms")
    def resume_arms(self, request, queryset):
        for experiment in queryset:
            for variant in experiment.variants.filter(paused=True):
                services.arm_resume(variant=variant, user=request.user)
                self.message_user(
                    request, f"{experiment.name}: {variant.name} resumed."
                )


class _Rollback(Exception):
    pass


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "experiment", "kind", "arm", "message", "actor"]
    list_filter = ["kind", "experiment"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

"""Read-only views of what monitoring stored. The beat schedules are
edited under "Periodic tasks" (django-celery-beat's admin)."""

from django.contrib import admin

from monitoring.models import MetricRollup, PredictionEvent, SystemSample


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(MetricRollup)
class MetricRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "minute",
        "model",
        "version",
        "experiment",
        "arm",
        "count",
        "errors",
        "latency_p50_ms",
        "latency_p99_ms",
    ]
    list_filter = ["model", "version", "experiment"]
    date_hierarchy = "minute"
    ordering = ["-minute"]


@admin.register(PredictionEvent)
class PredictionEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "request_id",
        "model",
        "version",
        "outcome",
        "latency_ms",
        "predicted_class",
        "confidence",
    ]
    list_filter = ["outcome", "model", "version"]
    search_fields = ["request_id", "subject_key"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    show_full_result_count = False  # counting millions of rows is slow


@admin.register(SystemSample)
class SystemSampleAdmin(ReadOnlyAdmin):
    list_display = [
        "sampled_at",
        "host",
        "cpu_percent",
        "memory_percent",
        "disk_percent",
    ]
    ordering = ["-sampled_at"]

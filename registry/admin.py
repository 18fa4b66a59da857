"""Registry admin: models with their versions, aliases and alias history;
versions with Activate / Roll back / Verify buttons (each behind a
confirmation page) and an upload form for new versions; aliases set, moved
and removed by staff. All changes go through registry.services."""

from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import get_valid_filename

from mlserving.conf import app_settings
from mlserving.errors import ApplicationError
from registry import artifacts, selectors, services
from registry.models import AliasChange, ModelAlias, ModelVersion, RegisteredModel


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["version", "status", "accuracy", "model_type", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="accuracy")
    def accuracy(self, obj):
        return obj.accuracy

    @admin.display(description="serves with")
    def serving_runtime(self, obj):
        return obj.serving_runtime


class AliasChangeLabels:
    """The from/to columns of the alias history: "-" where the alias
    pointed at nothing (before its first move, after its removal)."""

    # Not named from_version/to_version: those are the model's foreign
    # keys, which the admin would show instead.
    @admin.display(description="from")
    def from_text(self, obj):
        return obj.from_label or "-"

    @admin.display(description="to")
    def to_text(self, obj):
        if obj.action == AliasChange.Action.REMOVE:
            return "- (removed)"
        return obj.to_label or "-"


class AliasChangeInline(AliasChangeLabels, admin.TabularInline):
    model = AliasChange
    extra = 0
    can_delete = False
    verbose_name = "alias change"
    verbose_name_plural = "alias history"
    fields = [
        "changed_at",
        "alias",
        "action",
        "from_text",
        "to_text",
        "actor",
        "note",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ModelAliasInline(admin.TabularInline):
    """The model's aliases, read-only here: the change link opens the
    alias, whose form moves it through the service."""

    model = ModelAlias
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "aliases"
    fields = ["name", "version_label", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="version")
    def version_label(self, obj):
        return obj.version.version


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "active_version",
        "aliases_list",
        "versions_count",
        "updated_at",
    ]
    search_fields = ["name", "description"]
    inlines = [ModelVersionInline, ModelAliasInline, AliasChangeInline]

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj else []

    @admin.display(description="active version")
    def active_version(self, obj):
        active = selectors.model_version_get_active(model=obj)
        return active.version if active else "-"

    @admin.display(description="aliases")
    def aliases_list(self, obj):
        aliases = selectors.model_aliases(model=obj)
        return ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "-"

    @admin.display(description="versions")
    def versions_count(self, obj):
        return obj.versions.count()

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.aliases.exists():
            return False  # it is serving; deactivate by deleting nothing
        return super().has_delete_permission(request, obj)


class ModelVersionAddForm(forms.ModelForm):
    """Upload an artifact as a new version of a (new or existing) model."""

    model_name = forms.SlugField(
        label="Model",
        help_text="An existing registered model's name, or a new one.",
    )
    artifact = forms.FileField(
        help_text="A skops file (skops.io.dump of a fitted estimator) or an "
        "ONNX model. Pickle and joblib files run code when loaded and are "
        "refused here: register them from the server's disk with "
        "manage.py register_model."
    )
    metadata = forms.JSONField(
        required=False,
        initial=dict,
        help_text='Optional, e.g. {"accuracy": 0.95, "name": "Model v2.0"}.',
    )
    activate = forms.BooleanField(
        required=False, help_text="Make it the active version at once."
    )

    class Meta:
        model = ModelVersion
        fields = ["version", "display_name"]

    def clean_version(self):
        version = self.cleaned_data["version"]
        if not artifacts.VERSION_PATTERN.match(version):
            raise forms.ValidationError("Use 1-64 letters, digits, '.', '_' or '-'.")
        return version

    def clean(self):
        cleaned = super().clean()
        name, version = cleaned.get("model_name"), cleaned.get("version")
        if (
            name
            and version
            and ModelVersion.objects.filter(model__name=name, version=version).exists()
        ):
            raise forms.ValidationError(f"{name} already has {version}.")
        upload = cleaned.get("artifact")
        if upload is not None:
            limit = app_settings.UPLOAD_MAX_BYTES
            if upload.size > limit:
                self.add_error(
                    "artifact",
                    f"The file is {upload.size:,} bytes, over the limit of "
                    f"{limit:,} (UPLOAD_MAX_BYTES).",
                )
                return cleaned
            data = upload.read()
            upload.seek(0)
            try:
                # Inspected without executing anything: never unpickled.
                services.artifact_upload_check(data=data)
            except ApplicationError as exc:
                self.add_error("artifact", exc.message)
            else:
                cleaned["artifact_bytes"] = data
        return cleaned


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    change_form_template = "admin/registry/modelversion/change_form.html"
    list_display = [
        "version",
        "model",
        "is_active",
        "status",
        "accuracy",
        "model_type",
        "serving_runtime",
        "n_features",
        "size_bytes",
        "created_at",
    ]
    list_filter = ["model", "status", "model_type", "runtime", "format"]
    search_fields = ["version", "display_name", "model__name", "sha256"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "model",
        "version",
        "is_active",
        "status",
        "status_detail",
        "artifact_path",
        "format",
        "serving_runtime",
        "sha256",
        "size_bytes",
        "compiled_detail",
        "compiled_path",
        "compiled_sha256",
        "compiled_size_bytes",
        "model_type",
        "n_features",
        "feature_names",
        "classes",
        "input_dtype",
        "sklearn_version",
        "skops_path",
        "skops_sha256",
        "trusted_types",
        "metrics",
        "metadata",
        "created_at",
        "created_by",
    ]

    def get_queryset(self, request):
        return selectors.model_version_with_active_flag(
            super().get_queryset(request).select_related("model")
        )

    @admin.display(boolean=True, description="active")
    def is_active(self, obj):
        return obj.is_active

    @admin.display(description="accuracy")
    def accuracy(self, obj):
        return obj.accuracy

    @admin.display(description="serves with")
    def serving_runtime(self, obj):
        return obj.serving_runtime

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ModelVersionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return [
                "model_name",
                "version",
                "display_name",
                "artifact",
                "metadata",
                "activate",
            ]
        return ["display_name", "runtime", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            runtime = obj.runtime
            obj.runtime = ModelVersion.objects.get(pk=obj.pk).runtime
            super().save_model(request, obj, form, change)
            services.model_version_runtime_set(
                version=obj, runtime=runtime, user=request.user
            )
            return
        data = form.cleaned_data
        upload = data["artifact"]
        metadata = dict(data.get("metadata") or {})
        if data.get("display_name"):
            metadata.setdefault("name", data["display_name"])
        created = services.model_version_register(
            model_name=data["model_name"],
            version=data["version"],
            data=data["artifact_bytes"],
            filename=get_valid_filename(Path(upload.name).name),
            origin=services.UPLOAD,
            metadata=metadata,
            user=request.user,
        )
        obj.pk = created.pk
        obj.model = created.model
        if data.get("activate"):
            services.model_version_activate(
                version=created, user=request.user, note="uploaded in admin"
            )

    def has_delete_permission(self, request, obj=None):
        # The active version is also PROTECTed by the alias's foreign key;
        # Django's bulk delete asks this per object and refuses as a whole.
        if obj is not None and obj.is_active:
            return False
        return super().has_delete_permission(request, obj)

    # --- Activate / Roll back / Verify, each with a confirmation page ---

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/activate/",
                wrap(self.activate_view),
                name="registry_modelversion_activate",
            ),
            path(
                "<int:pk>/rollback/",
                wrap(self.rollback_view),
                name="registry_modelversion_rollback",
            ),
            path(
                "<int:pk>/verify/",
                wrap(self.verify_view),
                name="registry_modelversion_verify",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            model = obj.model
            active = selectors.model_version_get_active(model=model)
            target = selectors.rollback_target(model=model)
            context.update(
                is_active=active is not None and active.pk == obj.pk,
                active_version=active,
                rollback_target=target,
                history=selectors.alias_history_list(model=model, limit=20),
            )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def _confirm(self, request, version, *, action, title, text, perform):
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        back = reverse("admin:registry_modelversion_change", args=[version.pk])
        if request.method == "POST":
            try:
                message = perform()
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, message, messages.SUCCESS)
            return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "object": version,
            "action": action,
            "text": text,
            "back": back,
        }
        return TemplateResponse(
            request, "admin/registry/modelversion/confirm.html", context
        )

    def activate_view(self, request, pk):
        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
        active = selectors.model_version_get_active(model=version.model)

        def perform():
            change = services.model_version_activate(
                version=version, user=request.user, note="admin"
            )
            if change is None:
                return f"{version} was already active."
            return (
                f"{version.model.name}: {change.from_label or '-'} -> "
                f"{change.to_label} is now active."
            )

        return self._confirm(
            request,
            version,
            action="Activate",
            title=f"Activate {version}?",
            text=format_html(
                "All traffic of <b>{}</b> moves from <b>{}</b> to <b>{}</b> "
                "within a second, in every server process.",
                version.model.name,
                active.version if active else "nothing",
                version.version,
            ),
            perform=perform,
        )

    def rollback_view(self, request, pk):
        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
        model = version.model
        target = selectors.rollback_target(model=model)
        active = selectors.model_version_get_active(model=model)

        def perform():
            change = services.model_rollback(
                model=model, user=request.user, note="admin"
            )
            return (
                f"{model.name} rolled back: {change.from_label} -> {change.to_label}."
            )

        return self._confirm(
            request,
            version,
            action="Roll back",
            title=f"Roll back {model.name}?",
            text=format_html(
                "<b>{}</b> goes back from <b>{}</b> to <b>{}</b>.",
                model.name,
                active.version if active else "nothing",
                target.version if target else "(no earlier version)",
            ),
            perform=perform,
        )

    def verify_view(self, request, pk):
        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)

        def perform():
            services.model_version_verify(version=version)
            if version.status == ModelVersion.Status.READY:
                return f"{version}: the artifact matches its sha256 and loads."
            raise ApplicationError(f"{version}: {version.status_detail}")

        return self._confirm(
            request,
            version,
            action="Verify",
            title=f"Verify {version}?",
            text=format_html(
                "Re-read <code>{}</code>, compare it with the recorded "
                "sha256 and load it. The status is updated either way.",
                version.artifact_path,
            ),
            perform=perform,
        )


class ModelAliasForm(forms.ModelForm):
    """Set or move an alias. The version must be one of the model's; the
    name must be one the service accepts (checked here so the form says
    so; the service checks again)."""

    class Meta:
        model = ModelAlias
        fields = ["model", "name", "version"]
        help_texts = {
            "name": "1-50 lower-case letters, digits, '_' or '-', starting "
            "with a letter (champion, challenger, ...). Setting the default "
            "alias activates the version.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        version = self.fields.get("version")
        if version is not None:
            versions = ModelVersion.objects.select_related("model")
            if self.instance.pk:
                versions = versions.filter(model_id=self.instance.model_id)
            version.queryset = versions

    def clean_name(self):
        name = self.cleaned_data["name"]
        if not services.ALIAS_PATTERN.match(name):
            raise forms.ValidationError(
                "Use 1-50 lower-case letters, digits, '_' or '-', starting "
                "with a letter."
            )
        return name

    def clean(self):
        cleaned = super().clean()
        model = cleaned.get("model") or (
            self.instance.model if self.instance.pk else None
        )
        version = cleaned.get("version")
        if model is not None and version is not None and version.model_id != model.pk:
            self.add_error("version", f"{version} is not a version of {model.name}.")
        return cleaned


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    """Aliases set, moved and removed through registry.services, so every
    move is checked (the version's artifact), recorded in the history and
    reaches every serving process. A refused move is an error message on
    the form, never a half-done change."""

    form = ModelAliasForm
    list_display = ["name", "model", "version_label", "updated_at"]
    list_filter = ["model", "name"]
    search_fields = ["name", "model__name", "version__version"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model", "version")

    @admin.display(description="version", ordering="version__version")
    def version_label(self, obj):
        return obj.version.version

    def get_readonly_fields(self, request, obj=None):
        # Renaming is removing one alias and setting another: two moves
        # the history should show as such.
        return ["model", "name", "updated_at"] if obj else []

    def has_delete_permission(self, request, obj=None):
        # The default alias is never removed (activate or roll back
        # instead); Django's bulk delete asks this per object too.
        if obj is not None and obj.name == selectors.alias_name():
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        try:
            services.model_alias_set(
                version=obj.version, alias=obj.name, user=request.user, note="admin"
            )
        except ApplicationError as exc:
            request._alias_refused = exc.message
            return
        obj.pk = ModelAlias.objects.get(model=obj.version.model, name=obj.name).pk

    def log_addition(self, request, obj, message):
        if not getattr(request, "_alias_refused", None):
            super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if not getattr(request, "_alias_refused", None):
            super().log_change(request, obj, message)

    def _refused_response(self, request):
        self.message_user(request, request._alias_refused, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_alias_refused", None):
            return self._refused_response(request)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "_alias_refused", None):
            return self._refused_response(request)
        return super().response_change(request, obj)

    def delete_model(self, request, obj):
        try:
            services.model_alias_remove(
                model=obj.model, alias=obj.name, user=request.user, note="admin"
            )
        except ApplicationError as exc:
            request._alias_refused = exc.message

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_alias_refused", None):
            self.message_user(request, request._alias_refused, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:registry_modelalias_changelist"))
        return super().response_delete(request, obj_display, obj_id)

    def delete_queryset(self, request, queryset):
        for alias in queryset.select_related("model"):
            try:
                services.model_alias_remove(
                    model=alias.model, alias=alias.name, user=request.user, note="admin"
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)


@admin.register(AliasChange)
class AliasChangeAdmin(AliasChangeLabels, admin.ModelAdmin):
    list_display = [
        "changed_at",
        "model",
        "alias",
        "action",
        "from_text",
        "to_text",
        "actor",
        "note",
    ]
    list_filter = ["model", "action", "alias"]
    search_fields = ["from_label", "to_label", "actor", "note"]
    date_hierarchy = "changed_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

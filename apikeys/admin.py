"""API keys in the admin: create (secret shown once), edit scopes/allowlist/expiry, revoke.

Every change goes through ``apikeys.services``; the encrypted secret is never displayed,
and keys are never deleted (revoked keys stay for the record).
"""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from exchange.errors import BourseError

from . import services
from .forms import ApiKeyChangeForm, ApiKeyCreateForm, NewTraderForm, RevokeForm
from .models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "label", "account", "scheme", "scope_list", "status", "expires_at", "last_used_at")
    list_filter = ("status", "scheme", "created_at")
    search_fields = ("=key_id", "label", "=account__id", "account__name")
    list_select_related = ("account",)
    form = ApiKeyChangeForm
    audited_by_services = True  # create, update and revoke go through apikeys.services, which audit
    readonly_fields = ("key_id", "account", "scheme", "public_key", "status", "created_at", "revoked_at", "last_used_at")
    fields = readonly_fields[:4] + ("label", "scopes", "ip_allowlist", "expires_at") + readonly_fields[4:]
    actions = ["revoke_keys"]

    @admin.display(description="scopes")
    def scope_list(self, key):
        return ", ".join(key.scopes)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == ApiKey.Status.REVOKED:
            return self.fields  # a revoked key is a record, not something to edit
        return self.readonly_fields

    # --- create: a custom page, since the secret must be shown exactly once -----------------
    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiKeyCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                created = services.apikey_create(
                    account=data["account"],
                    scheme=data["scheme"],
                    scopes=data["scopes"],
                    label=data["label"],
                    ip_allowlist=data["ip_allowlist"],
                    expires_at=data["expires_at"],
                    public_key=data["public_key"] or None,
                )
            except BourseError as exc:
                form.add_error(None, f"{exc.detail} ({exc.code})")
            else:
                return TemplateResponse(
                    request,
                    "admin/apikeys/apikey/created.html",
                    {
                        **self.admin_site.each_context(request),
                        "title": "API key created",
                        "opts": self.model._meta,
                        "key": created.key,
                        "secret": created.secret,
                        "private_key": created.private_key,
                        "change_url": reverse("admin:apikeys_apikey_change", args=[created.key.pk]),
                    },
                    headers={"Cache-Control": "no-store"},
                )
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/add.html",
            {
                **self.admin_site.each_context(request),
                "title": "Add API key",
                "opts": self.model._meta,
                "form": form,
                "add": True,
            },
        )

    # --- edit: through apikey_update ---------------------------------------------------------
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # ModelAdmin wraps this in transaction.atomic; apikey_update opens its own durable
        # transaction, which must not nest, and is the only write the page makes.
        return self._changeform_view(request, object_id, form_url, extra_context)  # type: ignore[attr-defined]  # ModelAdmin's private unwrapped view, absent from the stubs

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            services.apikey_update(
                key=obj, label=data["label"], scopes=data["scopes"],
                ip_allowlist=data["ip_allowlist"], expires_at=data["expires_at"],
            )
        except BourseError as exc:
            self.message_user(request, f"{exc.detail} ({exc.code})", messages.ERROR)

    # --- revoke ---------------------------------------------------------------------------------
    def has_revoke_permission(self, request):
        return request.user.has_perm("apikeys.revoke_apikey")

    def get_urls(self):
        return [
            path("<int:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view), name="apikeys_apikey_revoke"),
            path("new-trader/", self.admin_site.admin_view(self.new_trader_view), name="apikeys_apikey_new_trader"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_revoke": self.has_revoke_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_add_trader": self._can_add_trader(request)}
        return super().changelist_view(request, extra_context)

    def revoke_view(self, request, object_id):
        """The key page's Revoke button: asks for a reason, recorded in ``apikey.revoked``."""
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        key = get_object_or_404(ApiKey, pk=object_id)
        change_url = reverse("admin:apikeys_apikey_change", args=[key.pk])
        form = RevokeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            services.apikey_revoke(key=key, reason=form.cleaned_data["reason"])
            self.message_user(request, f"Revoked {key.key_id}: its requests are refused and its open sessions closed.",
                              messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        return TemplateResponse(request, "admin/apikeys/apikey/revoke.html", {
            **self.admin_site.each_context(request), "title": f"Revoke {key.key_id}", "opts": self.model._meta,
            "key": key, "form": form, "change_url": change_url,
        })

    def _can_add_trader(self, request) -> bool:
        user = request.user
        return user.has_perm("apikeys.add_apikey") and user.has_perm("accounts.add_account")

    def new_trader_view(self, request):
        """One form for what ``create_trader`` does: user, account, key and opening deposits,
        all or nothing (``services.trader_create``); the credential is shown once."""
        if not self._can_add_trader(request):
            raise PermissionDenied
        form = NewTraderForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                created = services.trader_create(name=data["name"], deposits=data["deposits"], scheme=data["scheme"],
                                                 scopes=data["scopes"], label=data["label"])
            except BourseError as exc:
                form.add_error(None, f"{exc.detail} ({exc.code})")
            else:
                credentials = created.credentials
                return TemplateResponse(request, "admin/apikeys/apikey/created.html", {
                    **self.admin_site.each_context(request), "title": f"Trader {created.account.name} created",
                    "opts": self.model._meta, "key": credentials.key, "secret": credentials.secret,
                    "private_key": credentials.private_key,
                    "change_url": reverse("admin:apikeys_apikey_change", args=[credentials.key.pk]),
                }, headers={"Cache-Control": "no-store"})
        return TemplateResponse(request, "admin/apikeys/apikey/new_trader.html", {
            **self.admin_site.each_context(request), "title": "New trader", "opts": self.model._meta, "form": form,
        })

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        count = 0
        for key in queryset:
            services.apikey_revoke(key=key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s); their next request is refused.", messages.SUCCESS)

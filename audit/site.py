"""The Bourse console: Django's admin site with a throttled, audited log-in.

Installed as the default admin site by ``audit.apps.BourseAdminConfig`` (listed in
INSTALLED_APPS in place of ``django.contrib.admin``), so every ``@admin.register`` lands here.
"""
from django.contrib import admin

from .login import RETRY_AFTER_META_KEY, ThrottledAuthenticationForm


class BourseAdminSite(admin.AdminSite):
    site_header = "Bourse console"
    site_title = "Bourse console"
    index_title = "Operations and support"
    login_form = ThrottledAuthenticationForm

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        retry_after = request.META.get(RETRY_AFTER_META_KEY, 0)
        if retry_after:
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response

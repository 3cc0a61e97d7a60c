"""``django.contrib.admin`` with ``audit.site.BourseAdminSite`` as its default site; listed in
INSTALLED_APPS in place of ``django.contrib.admin`` (its own module, so that importing it
while settings load pulls in nothing that needs the app registry)."""
from django.contrib.admin.apps import AdminConfig


class BourseAdminConfig(AdminConfig):
    default_site = "audit.site.BourseAdminSite"

"""URL map: the API under /api/v1, docs, admin, health checks."""
from django.contrib import admin
from django.urls import include, path

from trading.api import views as trading_views

from . import views

api_v1 = [
    path("time", views.TimeApi.as_view(), name="time"),
    path("markets", trading_views.MarketListApi.as_view(), name="market-list"),
    path("markets/<str:symbol>", trading_views.MarketDetailApi.as_view(), name="market-detail"),
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]

handler404 = "exchange.problems.handler404"
handler500 = "exchange.problems.handler500"

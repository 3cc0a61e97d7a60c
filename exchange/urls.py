"""URL map: the API under /api/v1, the API explorer, the guides under /docs/, admin, health checks."""
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView, SpectacularYAMLAPIView

from accounts.api import views as account_views
from trading.api import operations as operations_views
from trading.api import order_entry
from trading.api import views as trading_views

from . import guides, views

api_v1 = [
    path("time", views.TimeApi.as_view(), name="time"),
    path("markets", trading_views.MarketListApi.as_view(), name="market-list"),
    path("markets/<str:symbol>", trading_views.MarketDetailApi.as_view(), name="market-detail"),
    path("markets/<str:symbol>/book", trading_views.MarketBookApi.as_view(), name="market-book"),
    path("markets/<str:symbol>/trades", trading_views.MarketTradeListApi.as_view(), name="market-trades"),
    path("markets/<str:symbol>/ticker", trading_views.MarketTickerApi.as_view(), name="market-ticker"),
    path("markets/<str:symbol>/candles", trading_views.MarketCandleListApi.as_view(), name="market-candles"),
    path("tickers", trading_views.TickerListApi.as_view(), name="ticker-list"),
    path("assets", trading_views.AssetListApi.as_view(), name="asset-list"),
    path("orders", trading_views.OrderListSubmitApi.as_view(), name="order-list"),
    path("orders/batch", order_entry.OrderBatchApi.as_view(), name="order-batch"),
    path("cancel-after", order_entry.CancelAfterApi.as_view(), name="cancel-after"),
    path("orders/by-client-id/<str:client_order_id>", trading_views.OrderByClientIdApi.as_view(), name="order-by-client-id"),
    path("orders/<str:order_id>", trading_views.OrderDetailApi.as_view(), name="order-detail"),
    path("fills", trading_views.FillListApi.as_view(), name="fill-list"),
    path("positions", trading_views.PositionListApi.as_view(), name="position-list"),
    path("account", account_views.AccountGetApi.as_view(), name="account"),
    path("balances", account_views.BalanceListApi.as_view(), name="balance-list"),
    path("ledger", account_views.LedgerEntryListApi.as_view(), name="ledger-list"),
    path("openapi.yaml", SpectacularYAMLAPIView.as_view(), name="openapi"),
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    # The split view serves its start-up script from a URL of its own: no inline script, so
    # the page works under the Content-Security-Policy (script-src 'self').
    path("api/docs", SpectacularSwaggerSplitView.as_view(url_name="v1:openapi"), name="api-docs"),
    path("api/docs/redoc", SpectacularRedocView.as_view(url_name="v1:openapi"), name="api-docs-redoc"),
    # The integrator guides and the contracts (exchange.guides): problem `type` URIs land here.
    path("docs/", guides.index, name="docs-index"),
    path("docs/examples/", guides.examples, name="docs-examples"),
    path("docs/examples/<str:name>", guides.examples, name="docs-example"),
    re_path(r"^docs/(?P<name>[A-Za-z0-9_-]+\.(?:yaml|xml))$", guides.contract_file, name="docs-file"),
    path("docs/releases/<str:version>/openapi.yaml", guides.released_openapi, name="docs-release"),
    path("docs/<slug:slug>", guides.page, name="docs-page"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", operations_views.readyz, name="readyz"),
    path("metrics", operations_views.metrics_view, name="metrics"),
]

handler400 = "exchange.problems.handler400"
handler403 = "exchange.problems.handler403"
handler404 = "exchange.problems.handler404"
handler500 = "exchange.problems.handler500"

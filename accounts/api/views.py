"""Private account endpoints (scope ``read``): thin views over ``accounts.selectors``.

The account is always the one the verified API key belongs to; no endpoint takes an
account id from the caller.
"""
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from apikeys.authentication import PrivateApi
from apikeys.schema import AUTH_ERROR_EXAMPLES, RATE_LIMIT_HEADERS
from exchange.pagination import paginate
from exchange.schema import PAGE_PARAMETERS, page_of, problem_responses
from exchange.timefilter import TIME_RANGE_NAMES, TIME_RANGE_PARAMETERS, filter_range

from .. import selectors
from .serializers import AccountSerializer, BalanceSerializer, LedgerEntrySerializer

PRIVATE_ERRORS = (401, 403, 429)


class AccountGetApi(PrivateApi):
    """The caller's account and the API key that signed the request (never its secret)."""

    @extend_schema(
        operation_id="account_get",
        summary="Get the account",
        tags=["account"],
        parameters=RATE_LIMIT_HEADERS,
        responses={200: AccountSerializer, **problem_responses(*PRIVATE_ERRORS)},
        examples=[*AUTH_ERROR_EXAMPLES,
            OpenApiExample(
                "Account",
                value={
                    "account_id": "7",
                    "name": "alice",
                    "created_at": "2026-11-23T18:00:00.123456Z",
                    "api_key": {
                        "key_id": "bk_3fq8m2k4x9a7c5d2e6g8h4j2",
                        "label": "market maker",
                        "scheme": "hmac",
                        "scopes": ["read", "trade"],
                        "ip_allowlist": ["203.0.113.0/24"],
                        "expires_at": None,
                        "created_at": "2026-11-23T18:00:00.123456Z",
                    },
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        account = selectors.account_get(account_id=request.auth.account_id)
        return Response(AccountSerializer(account, context={"key": request.auth}).data)


class BalanceListApi(PrivateApi):
    """Every asset, with the account's total, available and locked amounts (zero for assets
    it never held), as decimal strings in the asset's scale; paginated by asset code."""

    query_parameters = {"get": ("limit", "cursor")}

    @extend_schema(
        operation_id="balances_list",
        summary="List balances",
        tags=["account"],
        parameters=[*PAGE_PARAMETERS, *RATE_LIMIT_HEADERS],
        responses={200: page_of(BalanceSerializer, "BalancePage"), **problem_responses(400, *PRIVATE_ERRORS)},
        examples=[*AUTH_ERROR_EXAMPLES,
            OpenApiExample(
                "Balances",
                value={
                    "results": [
                        {"asset": "BTC", "total": "1.50000000", "available": "1.25000000", "locked": "0.25000000"},
                        {"asset": "USD", "total": "10000.00", "available": "10000.00", "locked": "0.00"},
                    ],
                    "next_cursor": None,
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        assets, next_cursor = paginate(selectors.asset_list(), request.query_params, key="code")
        rows = selectors.balances_for_assets(account_id=request.auth.account_id, assets=assets)
        return Response({"results": BalanceSerializer(rows, many=True).data, "next_cursor": next_cursor})


class LedgerEntryListApi(PrivateApi):
    """The account's own ledger entries, newest first: signed amount per bucket (`available`
    or `locked`), kind, reference and time. Entries of one journal share `journal_id`."""

    query_parameters = {"get": ("asset", "limit", "cursor", *TIME_RANGE_NAMES)}

    @extend_schema(
        operation_id="ledger_list",
        summary="List ledger entries",
        tags=["account"],
        parameters=[
            OpenApiParameter("asset", str, description="Only this asset's entries (e.g. `USD`)."),
            *PAGE_PARAMETERS,
            *TIME_RANGE_PARAMETERS,
            *RATE_LIMIT_HEADERS,
        ],
        responses={
            200: page_of(LedgerEntrySerializer, "LedgerEntryPage"),
            **problem_responses(400, *PRIVATE_ERRORS, 422),
        },
        examples=[*AUTH_ERROR_EXAMPLES,
            OpenApiExample(
                "Ledger",
                value={
                    "results": [
                        {
                            "entry_id": "42",
                            "journal_id": "21",
                            "asset": "USD",
                            "bucket": "available",
                            "kind": "deposit",
                            "amount": "10000.00",
                            "reference": "wire 2026-11-23",
                            "created_at": "2026-11-23T18:00:00.123456Z",
                        }
                    ],
                    "next_cursor": None,
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        entries = filter_range(selectors.ledger_entry_list(
            account_id=request.auth.account_id, asset=request.query_params.get("asset") or None
        ), request.query_params)
        rows, next_cursor = paginate(entries, request.query_params, key="id", descending=True)
        return Response({"results": LedgerEntrySerializer(rows, many=True).data, "next_cursor": next_cursor})

"""Public market REST endpoints: thin views over ``trading.selectors``."""
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.pagination import paginate
from exchange.schema import PAGE_PARAMETERS, page_of, problem_responses

from .. import selectors
from .serializers import MarketSerializer


class MarketListApi(APIView):
    @extend_schema(
        operation_id="markets_list",
        tags=["market data"],
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(MarketSerializer, "MarketPage"), **problem_responses(400)},
        auth=[],
    )
    def get(self, request):
        markets, next_cursor = paginate(selectors.market_list(), request.query_params, key="symbol")
        return Response({"results": MarketSerializer(markets, many=True).data, "next_cursor": next_cursor})


class MarketDetailApi(APIView):
    @extend_schema(
        operation_id="markets_get",
        tags=["market data"],
        responses={200: MarketSerializer, **problem_responses(404)},
        auth=[],
    )
    def get(self, request, symbol: str):
        return Response(MarketSerializer(selectors.market_get(symbol)).data)

"""The base of every REST view: refuses query parameters the operation does not take, and
control characters (NUL above all, which PostgreSQL cannot store) in any query or path
parameter.

A typo in a filter (``?markt=BTC-USD``) would otherwise be ignored silently and answer with
every market's rows; like an unknown body field it is a 400 ``validation_error`` (field code
``unknown_parameter``). Each view lists the query parameters of each method in
``query_parameters``; a test checks the list against the OpenAPI document, so the two
cannot drift apart.
"""
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList
from rest_framework.views import APIView

from . import errors
from .syntax import has_control


class BourseApi(APIView):
    #: method (lower case) -> the query parameter names it accepts
    query_parameters: dict[str, tuple[str, ...]] = {}

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response._resource_closers.append(self._release)  # run by response.close(), once sent
        return response

    def _release(self) -> None:
        """Cut the reference cycles DRF makes of every request once its response is closed: the
        view holds its request and response (``view.request``, ``view.response``), each of which
        holds the view and itself again in its context (``request.parser_context``,
        ``response.renderer_context``); the serializers that made the response's data hold it
        and their fields, which hold them (``field.parent``). Left in place, every request's
        objects were freed only by Python's cyclic collector — with its full collections, 10-12
        % of a REST process's CPU under load (bench/order_path.md, exchange/heap.py); cut,
        reference counting frees them as the request ends (tests/api/test_request_garbage.py)."""
        request, response = getattr(self, "request", None), getattr(self, "response", None)
        for context in (getattr(request, "parser_context", None), getattr(response, "renderer_context", None)):
            if isinstance(context, dict):
                context.clear()
        data = getattr(response, "data", None)
        for value in (data, *(data.values() if isinstance(data, dict) else ())):
            if isinstance(value, ReturnDict | ReturnList):
                _untie(value.serializer)
        self.__dict__.clear()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            return  # 405 method_not_allowed, whatever the query says
        for name, value in [*request.query_params.items(), *((k, str(v)) for k, v in kwargs.items())]:
            if has_control(value) or has_control(name):
                raise errors.ValidationError.field(
                    name[:64], "invalid", f"{name[:64]} holds a control character, which no parameter may contain"
                )
        allowed = self.query_parameters.get(method, ())
        unknown = sorted(name for name in request.query_params if name not in allowed)
        if unknown:
            shown = [name[:64] for name in unknown[:10]]
            takes = ", ".join(allowed) if allowed else "none"
            raise errors.ValidationError(
                f"Unknown query parameter(s): {', '.join(shown)} (this operation takes: {takes}).",
                errors=[
                    {"field": name, "code": "unknown_parameter", "message": f"{name} is not a parameter of this operation"}
                    for name in shown
                ],
            )


def _untie(serializer) -> None:
    """Empty a serializer and every field under it (each instance's own: DRF copies the declared
    fields per serializer), so their parent-child links no longer make cycles. Only for a
    serializer whose data has been rendered."""
    stack = [serializer]
    while stack:
        node = stack.pop()
        state = getattr(node, "__dict__", None)
        if state is None:
            continue
        fields = state.get("fields")  # the bound fields, once built (DRF's cached BindingDict)
        if fields is not None:
            stack.extend(fields.values())
        if state.get("child") is not None:  # ListSerializer, ListField, DictField
            stack.append(state["child"])
        state.clear()

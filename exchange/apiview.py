"""The base of every REST view: refuses query parameters the operation does not take, and
control characters (NUL above all, which PostgreSQL cannot store) in any query or path
parameter.

A typo in a filter (``?markt=BTC-USD``) would otherwise be ignored silently and answer with
every market's rows; like an unknown body field it is a 400 ``validation_error`` (field code
``unknown_parameter``). Each view lists the query parameters of each method in
``query_parameters``; a test checks the list against the OpenAPI document, so the two
cannot drift apart.
"""
from rest_framework.views import APIView

from . import errors
from .syntax import has_control


class BourseApi(APIView):
    #: method (lower case) -> the query parameter names it accepts
    query_parameters: dict[str, tuple[str, ...]] = {}

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

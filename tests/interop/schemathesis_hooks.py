"""schemathesis hooks for tests/interop/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

POST /v5/Organizations takes exchangeOnlineSettings and sharePointOnlineSettings; when both are
given they must name the same organization (else 400). JSON Schema cannot say "these two
properties are equal" (the document says it in words), so schema-valid bodies that the generator
draws with two different names are made to agree before they are sent. Only positive cases are
touched: a negative case keeps whatever makes it invalid.
"""

import copy

import schemathesis


def _is_positive(case):
    meta = getattr(case, "meta", None)
    generation = getattr(meta, "generation", None)
    mode = getattr(generation, "mode", None)
    return mode is None or getattr(mode, "is_positive", False)


@schemathesis.hook
def map_case(context, case):
    operation = context.operation
    if operation is None or operation.method.upper() != "POST" or operation.path != "/v5/Organizations":
        return case
    if not isinstance(case.body, dict) or not _is_positive(case):
        return case
    body = copy.deepcopy(case.body)
    exchange = body.get("exchangeOnlineSettings")
    sharepoint = body.get("sharePointOnlineSettings")
    if isinstance(exchange, dict) and isinstance(sharepoint, dict):
        name = exchange.get("officeOrganizationName")
        if isinstance(name, str) and isinstance(sharepoint.get("officeOrganizationName"), str):
            sharepoint["officeOrganizationName"] = name
            case.body = body
    return case

"""Conformance of restoregate's v8 operations with the vendor's published OpenAPI document.

Calls every v8 operation restoregate serves against a running server and validates each response
body with the schemas of the reference document (Veeam Backup for Microsoft 365 REST API v8,
restore-session and device-code subset), resolving $ref within that document: OAuthTokenResponse,
RESTRestoreSession, PageOfRESTRestoreSession(Event), RESTDeviceCodeResponse,
RESTDeviceCodeCheckResponse, and RESTExceptionInfo for every error (the operations' `default`
response). The request bodies sent are validated against the reference's request schemas too, so
that the test speaks the vendor's dialect and not only ours.

Run by tests/interop/v8_conformance.sh, which starts the server and passes:
  RG_BASE (https://127.0.0.1:PORT), RG_CA (its certificate), RG_TOKEN (an admin access token),
  RG_ORG_ID (an organization), RG_ADMIN_PASSWORD.
Reference: tests/interop/reference/vb365-rest-v8-restore-subset.openapi.json (a copy of
shared/reference/…; RG_REFERENCE overrides). Exits 0 when every check passed.
"""

import json
import os
import sys
import uuid
from pathlib import Path

import requests
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

HERE = Path(__file__).resolve().parent
REFERENCE = Path(os.environ.get("RG_REFERENCE", HERE / "reference" / "vb365-rest-v8-restore-subset.openapi.json"))
REFERENCE_URI = "urn:vb365-rest-v8-restore-subset"

passed = []


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)
    passed.append(what)
    print(f"ok: {what}", flush=True)


def load_reference():
    if not REFERENCE.is_file():
        print(
            f"v8_conformance: the reference document {REFERENCE} is missing "
            "(a copy of shared/reference/vb365-rest-v8-restore-subset.openapi.json belongs there)",
            file=sys.stderr,
        )
        sys.exit(2)
    doc = json.loads(REFERENCE.read_text())
    registry = Registry().with_resource(REFERENCE_URI, Resource.from_contents(doc, default_specification=DRAFT4))
    return doc, registry


DOC, REGISTRY = load_reference()


def validator(cls, name):
    if name not in DOC["components"]["schemas"]:
        raise Failure(f"the reference has no schema {name}")
    schema = {"$ref": f"{REFERENCE_URI}#/components/schemas/{name}"}
    return cls(schema, registry=REGISTRY, format_checker=cls.FORMAT_CHECKER)


def errors_of(cls, name, instance):
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(cls, name).iter_errors(instance)
    ]


def response_schema(path, method, status):
    """The reference's schema name for an operation's response (`default` for errors)."""
    responses = DOC["paths"][path][method]["responses"]
    response = responses.get(str(status)) or responses["default"]
    content = response.get("content") or {}
    for media in ("application/json", "*/*"):
        if media in content:
            return content[media]["schema"]["$ref"].rsplit("/", 1)[-1]
    return None


def request_schema(path, method, media="application/json"):
    body = DOC["paths"][path][method].get("requestBody")
    if body is None:
        return None
    schema = body["content"][media]["schema"]
    return schema


class Api:
    def __init__(self):
        self.base = os.environ["RG_BASE"]
        self.session = requests.Session()
        # Trust exactly the server's certificate: without this, REQUESTS_CA_BUNDLE or
        # CURL_CA_BUNDLE in the environment would replace it, and proxies would apply.
        self.session.trust_env = False
        self.session.verify = os.environ["RG_CA"]
        self.token = os.environ["RG_TOKEN"]

    def call(self, method, ref_path, concrete_path, *, json_body=None, form=None, auth=True, expect, label=None):
        """Sends one request; checks the status, the content type and the body against the
        reference's schema for that status. Returns the decoded body (or None)."""
        label = label or f"{method.upper()} {concrete_path}"
        if json_body is not None:
            schema = request_schema(ref_path, method)
            if schema is not None:
                if "$ref" in schema:
                    request_errors = errors_of(OAS30WriteValidator, schema["$ref"].rsplit("/", 1)[-1], json_body)
                else:
                    request_errors = [e.message for e in OAS30WriteValidator(schema, registry=REGISTRY).iter_errors(json_body)]
                check(not request_errors, f"{label}: the request body is valid for the reference ({request_errors})")
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        r = self.session.request(
            method.upper(), self.base + concrete_path, json=json_body, data=form, headers=headers, timeout=30
        )
        check(r.status_code == expect, f"{label} answers {expect} (got {r.status_code}: {r.text[:300]})")
        if r.status_code == 204:
            check(r.content == b"", f"{label}: 204 has no body")
            return None
        ctype = r.headers.get("content-type", "")
        check(ctype.startswith("application/json"), f"{label}: content type is JSON ({ctype})")
        body = r.json()
        name = response_schema(ref_path, method, r.status_code)
        check(name is not None, f"{label}: the reference documents a body for {r.status_code}")
        errs = errors_of(OAS30ReadValidator, name, body)
        check(not errs, f"{label}: the body validates against {name} ({errs}; body {json.dumps(body)[:400]})")
        if r.status_code >= 400 and name == "RESTExceptionInfo":
            check(isinstance(body.get("message"), str) and body["message"], f"{label}: the error has a message")
        return body


def self_test():
    """The validators do reject: a wrong enum, a missing required property, a bad date-time."""
    check(errors_of(OAS30ReadValidator, "RESTRestoreSession", {"type": "Foo"}), "self-test: an invalid session is rejected")
    bad_date = {"id": str(uuid.uuid4()), "type": "Vex", "creationTime": "yesterday", "state": "Working", "result": "Success"}
    check(errors_of(OAS30ReadValidator, "RESTRestoreSession", bad_date), "self-test: formats are checked (date-time)")
    check(errors_of(OAS30ReadValidator, "RESTExceptionInfo", {"message": "m", "errorCode": "Oops"}), "self-test: an unknown errorCode is rejected")
    good = dict(bad_date, creationTime="2021-03-15T14:30:00Z", endTime=None)
    check(not errors_of(OAS30ReadValidator, "RESTRestoreSession", good), "self-test: nullable is understood (endTime null)")


def main():
    self_test()
    api = Api()
    org = os.environ["RG_ORG_ID"]
    admin_password = os.environ["RG_ADMIN_PASSWORD"]
    token_path = "/v8/token"

    # POST /v8/token: form and JSON, password and refresh_token grants; OAuth-style errors.
    form = {"grant_type": "password", "username": "admin", "password": admin_password}
    tokens = api.call("post", token_path, token_path, form=form, auth=False, expect=200, label="POST /v8/token (form)")
    check(tokens["token_type"].lower() == "bearer", "token_type is bearer")
    body_schema = DOC["paths"][token_path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    check(not list(OAS30WriteValidator(body_schema).iter_errors(form)), "the token form is valid for the reference")
    r = api.session.post(api.base + token_path, json=form, timeout=30)
    check(r.status_code == 200, f"POST /v8/token (JSON) answers 200 ({r.status_code})")
    check(not errors_of(OAS30ReadValidator, "OAuthTokenResponse", r.json()), "POST /v8/token (JSON): body validates against OAuthTokenResponse")
    api.call(
        "post", token_path, token_path, form={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=False, expect=200, label="POST /v8/token (refresh_token)",
    )
    bad = api.call(
        "post", token_path, token_path, form={"grant_type": "password", "username": "admin", "password": "wrong"},
        auth=False, expect=400, label="POST /v8/token (wrong password)",
    )
    check(bad.get("error") == "invalid_grant", "a wrong password is invalid_grant")
    api.call(
        "post", token_path, token_path, form={"grant_type": "client_credentials"}, auth=False, expect=400,
        label="POST /v8/token (unsupported grant)",
    )

    # POST /v8/Organizations/{organizationId}/explore: the options are the body.
    explore = "/v8/Organizations/{organizationId}/explore"
    options = {"dateTime": "2021-03-15T14:30:00Z", "type": "Vex", "showDeleted": True, "showAllVersions": True}
    session = api.call("post", explore, f"/v8/Organizations/{org}/explore", json_body=options, expect=201)
    check(session["state"] == "Working" and session["type"] == "Vex", "the new session is a working Exchange session")
    sid = session["id"]
    teams = api.call("post", explore, f"/v8/Organizations/{org}/explore", json_body={"type": "Vet"}, expect=201)
    check(teams["type"] == "Vet", "explore with type Vet starts a Teams session")
    api.call("post", explore, f"/v8/Organizations/{uuid.uuid4()}/explore", json_body={}, expect=404, label="explore of an unknown organization")
    api.call("post", explore, f"/v8/Organizations/{org}/explore", json_body={}, auth=False, expect=401, label="explore without a token")
    r = api.session.post(api.base + f"/v8/Organizations/{org}/explore", json={"type": "exchange"}, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
    check(r.status_code == 400, f"explore with an unknown type answers 400 ({r.status_code})")
    check(not errors_of(OAS30ReadValidator, "RESTExceptionInfo", r.json()), "the 400 validates against RESTExceptionInfo")
    check(r.json().get("errorCode") == "ParameterValidationFailure", "the 400 is a ParameterValidationFailure")

    # The session, the page of sessions and its events.
    api.call("get", "/v8/RestoreSessions/{restoreSessionId}", f"/v8/RestoreSessions/{sid}", expect=200)
    page = api.call("get", "/v8/RestoreSessions", "/v8/RestoreSessions?offset=0&limit=10", expect=200)
    check(any(s["id"] == sid for s in page["results"]), "the page of sessions holds the new session")
    api.call("get", "/v8/RestoreSessions/{restoreSessionId}/Events", f"/v8/RestoreSessions/{sid}/Events", expect=200)
    api.call("get", "/v8/RestoreSessions/{restoreSessionId}", f"/v8/RestoreSessions/{uuid.uuid4()}", expect=404, label="an unknown session")

    # restoreDeviceCode, then POST /v8/DeviceCode/check.
    device = "/v8/RestoreSessions/{restoreSessionId}/organization/restoreDeviceCode"
    code = api.call("post", device, f"/v8/RestoreSessions/{sid}/organization/restoreDeviceCode", json_body={}, expect=200)
    check(isinstance(code.get("expiresIn"), int) and code["expiresIn"] > 0, "expiresIn is a number of seconds")
    api.call(
        "post", device, f"/v8/RestoreSessions/{sid}/organization/restoreDeviceCode",
        json_body={"targetOrganizationName": "abc.onmicrosoft.com"}, expect=400, label="restoreDeviceCode without targetRegion",
    )
    check_path = "/v8/DeviceCode/check"
    checked = api.call("post", check_path, check_path, json_body={"userCode": code["userCode"]}, expect=200)
    check(checked["authenticated"] is False, "nobody has signed in with the new code")
    api.call("post", check_path, check_path, json_body={"userCode": "NOPE-NOPE"}, expect=404, label="check of an unknown code")
    r = api.session.post(api.base + check_path, json={}, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
    check(r.status_code == 400 and not errors_of(OAS30ReadValidator, "RESTExceptionInfo", r.json()), "check without userCode: 400, RESTExceptionInfo")
    api.call("post", check_path, check_path, json_body={"userCode": "X"}, auth=False, expect=401, label="check without a token")

    # POST /v8/RestoreSessions/{restoreSessionId}/Stop: 204, then 409.
    stop = "/v8/RestoreSessions/{restoreSessionId}/Stop"
    api.call("post", stop, f"/v8/RestoreSessions/{sid}/Stop", expect=204)
    stopped = api.call("get", "/v8/RestoreSessions/{restoreSessionId}", f"/v8/RestoreSessions/{sid}", expect=200, label="the stopped session")
    check(stopped["state"] == "Stopped" and stopped["endTime"], "the session is stopped, with an end time")
    conflict = api.call("post", stop, f"/v8/RestoreSessions/{sid}/Stop", expect=409, label="Stop again")
    check(conflict["errorCode"] == "OperationConflict", "stopping twice is an OperationConflict")
    api.call("post", stop, f"/v8/RestoreSessions/{uuid.uuid4()}/Stop", expect=404, label="Stop of an unknown session")
    api.call("post", stop, f"/v8/RestoreSessions/{sid}/Stop", auth=False, expect=401, label="Stop without a token")
    api.call(
        "post", device, f"/v8/RestoreSessions/{sid}/organization/restoreDeviceCode", json_body={}, expect=409,
        label="restoreDeviceCode on a stopped session",
    )

    print(f"v8_conformance: {len(passed)} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        print(f"v8_conformance: {len(passed)} passed, 1 failed")
        sys.exit(1)

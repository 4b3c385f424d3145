"""A ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) decided offline, the way the API
server decides it (https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/),
with cel-python (``celpy``) as the CEL evaluator:

* ``matches``: the policy's matchConstraints (resourceRules, namespaceSelector matchLabels);
* ``evaluate``: ``variables`` in order (each may read the earlier ones as ``variables.<name>``),
  then every validation; a validation that is false is denied with its messageExpression, or its
  message when that fails. An expression that errors (or is not a bool) denies too, as
  ``failurePolicy: Fail`` does.

Kept apart from deepvre's code, so the tests do not grade deepvre against itself. Only what the
CEL in deepvre_hub.admission needs: no params, no matchConditions, no Kubernetes CEL libraries.
"""

import functools

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError

_ENV = celpy.Environment()


@functools.cache
def _program(expression):
    return _ENV.program(_ENV.compile(expression))


def _run(expression, activation):
    """The value, or the CELEvalError (celpy raises some and returns others)."""
    try:
        return _program(expression).evaluate(activation)
    except CELEvalError as err:
        return err


def admission_request(obj, operation="CREATE", username="system:serviceaccount:ns:deepvre-user"):
    """``request`` of an AdmissionReview for ``obj`` (a namespaced custom resource)."""
    group, version = obj["apiVersion"].split("/")
    return {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "resource": {"group": group, "version": version, "resource": obj["kind"].lower() + "s"},
        "requestKind": {"group": group, "version": version, "kind": obj["kind"]},
        "name": obj["metadata"].get("name", ""),
        "namespace": obj["metadata"].get("namespace", ""),
        "operation": operation,
        "userInfo": {"username": username, "groups": ["system:serviceaccounts", "system:authenticated"]},
        "dryRun": False,
    }


def matches(policy, request, namespace_labels):
    """Whether the policy's matchConstraints select this request in a namespace with these labels."""
    constraints = policy["spec"]["matchConstraints"]
    selector = constraints.get("namespaceSelector", {}).get("matchLabels", {})
    if any(namespace_labels.get(k) != v for k, v in selector.items()):
        return False

    def hit(allowed, value):
        return "*" in allowed or value in allowed

    return any(hit(rule["apiGroups"], request["resource"]["group"])
               and hit(rule["apiVersions"], request["resource"]["version"])
               and hit(rule["resources"], request["resource"]["resource"])
               and hit(rule["operations"], request["operation"])
               for rule in constraints["resourceRules"])


def evaluate(policy, obj, operation="CREATE", old=None):
    """``(variables, denials)``: the evaluated variables (name: CEL value or CELEvalError) and the
    messages of the validations that deny this request."""
    request = admission_request(obj, operation)
    activation = {"object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old),
                  "request": celpy.json_to_cel(request)}
    variables = {}
    for variable in policy["spec"].get("variables", []):
        activation["variables"] = celtypes.MapType(
            {celtypes.StringType(k): v for k, v in variables.items() if not isinstance(v, CELEvalError)})
        variables[variable["name"]] = _run(variable["expression"], activation)
    activation["variables"] = celtypes.MapType(
        {celtypes.StringType(k): v for k, v in variables.items() if not isinstance(v, CELEvalError)})
    denials = []
    for validation in policy["spec"]["validations"]:
        result = _run(validation["expression"], activation)
        if isinstance(result, CELEvalError):
            denials.append(f"expression error: {validation['expression']}: {result}")
        elif not isinstance(result, celtypes.BoolType):
            denials.append(f"not a bool: {validation['expression']}: {result!r}")
        elif not result:
            message = validation.get("message") or f"failed expression: {validation['expression']}"
            if "messageExpression" in validation:
                custom = _run(validation["messageExpression"], activation)
                if isinstance(custom, str) and custom and "\n" not in custom:
                    message = str(custom)
            denials.append(message)
    return variables, denials


def denials(policy, obj, operation="CREATE", old=None):
    """The messages of the validations that deny this request; ``[]``: admitted."""
    return evaluate(policy, obj, operation, old)[1]

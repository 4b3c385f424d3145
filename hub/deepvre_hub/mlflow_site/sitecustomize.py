"""Imported at the start of MLflow's server processes (``PYTHONPATH`` of that server alone).

graphene 3.4 turns a resolver's raw value (MLflow's run status ``1``) into its enum member in
``GrapheneEnumType.serialize``; graphql-core 3.3, which the lock holds, calls ``coerce_output_value``
instead, so MLflow's UI failed on every run page ("Enum 'MlflowRunStatus' cannot represent value: 1").
This gives ``coerce_output_value`` the same conversion. Without graphene or on graphql-core 3.2 it
changes nothing.
"""

from enum import Enum as _PyEnum

try:
    from graphene.types.definitions import GrapheneEnumType as _GrapheneEnumType
    from graphql import GraphQLEnumType as _GraphQLEnumType
except ImportError:
    _GrapheneEnumType = None

if _GrapheneEnumType is not None and hasattr(_GraphQLEnumType, "coerce_output_value"):

    def _coerce_output_value(self, value):
        if not isinstance(value, _PyEnum):
            enum = self.graphene_type._meta.enum
            try:
                value = enum(value)
            except ValueError:
                try:
                    value = enum[value]
                except KeyError:
                    pass
        return _GraphQLEnumType.coerce_output_value(self, value)

    _GrapheneEnumType.coerce_output_value = _coerce_output_value

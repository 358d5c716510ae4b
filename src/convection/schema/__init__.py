"""Schema: validators (``v``), table and schema definitions, and their JSON forms.

This layer sits right above ``values``: it imports only ``convection.values``,
``convection.errors`` and ``convection.knobs``.
"""

from __future__ import annotations

from convection.schema.builders import as_args_validator, pagination_opts_validator, v
from convection.schema.schema import (
    IndexDefinition,
    SchemaDefinition,
    SearchIndexDefinition,
    TableDefinition,
    VectorIndexDefinition,
    define_schema,
    define_table,
    field_path_get,
    schema_from_json,
    table_from_json,
)
from convection.schema.validator_json import validator_from_json
from convection.schema.validators import ObjectValidator, Validator

__all__ = [
    "IndexDefinition",
    "ObjectValidator",
    "SchemaDefinition",
    "SearchIndexDefinition",
    "TableDefinition",
    "Validator",
    "VectorIndexDefinition",
    "as_args_validator",
    "define_schema",
    "define_table",
    "field_path_get",
    "pagination_opts_validator",
    "schema_from_json",
    "table_from_json",
    "v",
    "validator_from_json",
]

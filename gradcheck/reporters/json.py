"""JSON report: one document with every layer, tensor and the summary; its schema is SCHEMA."""

from __future__ import annotations

import json
import math

from gradcheck.reporters.common import Locations, code_at
from gradcheck.results import LayerResult, RunResult, Status, TensorResult

SCHEMA_VERSION = 1

_STATUS = {"enum": [s.value for s in Status]}
_ERROR = {"type": ["number", "string"]}  # a float, or "inf" / "-inf" / "nan", which JSON cannot hold
_TEXT, _COUNT = {"type": "string"}, {"type": "integer", "minimum": 0}
_OPTIONAL_TEXT = {"type": ["string", "null"]}


def _object(properties: dict, **extra) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


TENSOR_SCHEMA = _object(
    {
        "name": _TEXT,
        "kind": {"enum": ["input", "param"]},
        "shape": {"type": "array", "items": _COUNT},
        "status": _STATUS,
        "max_abs_error": _ERROR,
        "max_rel_error": _ERROR,
        "worst_index": {"type": ["array", "null"], "items": _COUNT},
        "analytic": {"type": ["number", "string", "null"]},
        "numeric": {"type": ["number", "string", "null"]},
        "message": _TEXT,
        "diagnosis": _TEXT,
        "checked_by": {"type": "object", "additionalProperties": _COUNT},
        "example": {
            "type": ["object", "null"]
        },  # {"dims", "seed", "scale"} of the example shape and worst element are from
    }
)
LAYER_SCHEMA = _object(
    {
        "name": _TEXT,
        "status": _STATUS,
        "message": _TEXT,
        "tensors": {"type": "array", "items": TENSOR_SCHEMA},
        "examples": _COUNT,
        "seconds": {"type": "number", "minimum": 0},
        "seed": {"type": ["integer", "null"]},
        "failing_dims": {"type": ["object", "null"], "additionalProperties": {"type": "integer"}},
        "warnings": {"type": "array", "items": _TEXT},
        "kinks_skipped": _COUNT,
        "examples_redrawn": _COUNT,
        "calls": {"type": "object", "additionalProperties": _COUNT},
        "repro": _OPTIONAL_TEXT,
        "source": _OPTIONAL_TEXT,
        "code": _OPTIONAL_TEXT,
        "impl": _TEXT,
        "style": _TEXT,
        "xfail": _OPTIONAL_TEXT,
        "precision": {"enum": ["float64", "float32", "float16"]},
    }
)
SUMMARY_SCHEMA = _object(
    {
        **{s.value.lower(): _COUNT for s in Status},
        "total": _COUNT,
        "seconds": {"type": "number", "minimum": 0},
        "seed": {"type": ["integer", "null"]},
        "strict": {"type": "boolean"},
        "exit_code": {"enum": [0, 1]},
    }
)
SCHEMA = _object(
    {
        "schema_version": {"const": SCHEMA_VERSION},
        "layers": {"type": "array", "items": LAYER_SCHEMA},
        "summary": SUMMARY_SCHEMA,
    },
    title="gradcheck --format json report",
    **{"$schema": "https://json-schema.org/draft/2020-12/schema"},
)


def _number(value):
    """JSON has no inf/nan: those become the strings "inf", "-inf", "nan" so the document stays valid."""
    if value is None or isinstance(value, bool):
        return value
    value = float(value)
    return value if math.isfinite(value) else str(value)


def tensor_dict(tensor: TensorResult) -> dict:
    """One tensor of a layer, as TENSOR_SCHEMA describes."""
    return {
        "name": tensor.name,
        "kind": tensor.kind,
        "shape": [int(n) for n in tensor.shape],
        "status": tensor.status.value,
        "max_abs_error": _number(tensor.max_abs_error),
        "max_rel_error": _number(tensor.max_rel_error),
        "worst_index": [int(i) for i in tensor.worst_index] if tensor.worst_index is not None else None,
        "analytic": _number(tensor.analytic),
        "numeric": _number(tensor.numeric),
        "message": tensor.message,
        "diagnosis": tensor.diagnosis,
        "checked_by": dict(tensor.checked_by),
        "example": _example(tensor.example),
    }


def _example(example: dict | None) -> dict | None:
    if example is None:
        return None
    return {
        "dims": {k: int(v) for k, v in example["dims"].items()},
        "seed": int(example["seed"]),
        "scale": float(example["scale"]),
    }


def layer_dict(layer: LayerResult, locations: Locations | None = None) -> dict:
    """One layer, as LAYER_SCHEMA describes; what explains a failure comes from its account."""
    account = layer.account
    return {
        "name": layer.name,
        "status": layer.status.value,
        "message": account.message,
        "tensors": [tensor_dict(t) for t in layer.tensors],
        "examples": layer.examples,
        "seconds": round(layer.seconds, 4),
        "seed": layer.seed,
        "failing_dims": {k: int(v) for k, v in account.smallest_dims.items()} if account.smallest_dims else None,
        "warnings": list(account.warnings),
        "kinks_skipped": layer.kinks,
        "examples_redrawn": layer.redrawn,
        "calls": {k: int(v) for k, v in layer.calls.items()},
        "repro": account.reproduce or None,
        "source": layer.source or None,
        "code": code_at(layer, locations),
        "impl": layer.impl,
        "style": layer.style,
        "xfail": layer.xfail,
        "precision": layer.precision,
    }


def render_json(run: RunResult, strict: bool = False, locations: Locations | None = None) -> str:
    """The whole run as one JSON document matching SCHEMA."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "layers": [layer_dict(layer, locations) for layer in run.layers],
        "summary": {
            **{k.lower(): v for k, v in run.counts().items()},
            "total": len(run.layers),
            "seconds": round(run.seconds, 4),
            "seed": run.seed,
            "strict": strict,
            "exit_code": run.exit_code(strict),
        },
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"

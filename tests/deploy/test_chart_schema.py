"""helm/memifd/values.schema.json: up to date, and agreeing with InterfaceSpec."""

from __future__ import annotations

import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from memif.config import Mode, Role, RxMode
from memifd.cli import chart_schema
from memifd.core.models import Action, InterfaceSpec
from pydantic import ValidationError

from tests.deploy.conftest import CHART, CI_VALUES

VALIDATOR = jsonschema.Draft202012Validator(chart_schema.values_schema())

# Interface bodies the schema and the model must judge alike.
INTERFACES: dict[str, dict[str, Any]] = {
    "minimal": {"name": "a"},
    "full": {
        "name": "eth-0.a_b",
        "socket": "/run/memif/x.sock",
        "id": 0xFFFFFFFF,
        "role": "client",
        "secret": "s" * 24,
        "mode": "ip",
        "memory": {"num_queue_pairs": 255, "log2_ring_size": 1, "packet_buffer_size": 64},
        "rx_mode": "polling",
        "action": "xconnect",
        "xconnect_to": "b",
        "admin_up": False,
        "accept_unsealed_regions": True,
    },
    "abstract-socket": {"name": "a", "socket": "@memif"},
    "null-secret": {"name": "a", "secret": None},
    "role-master": {"name": "a", "role": "master"},
    "role-slave": {"name": "a", "role": "slave"},
    "mode-eth": {"name": "a", "mode": "eth"},
    "mode-punt": {"name": "a", "mode": "punt"},
    "name-32": {"name": "n" * 32},
    "no-name": {"role": "server"},
    "empty-name": {"name": ""},
    "name-33": {"name": "n" * 33},
    "name-leading-dot": {"name": ".a"},
    "name-space": {"name": "a b"},
    "socket-108": {"name": "a", "socket": "s" * 108},
    "socket-empty": {"name": "a", "socket": ""},
    "id-negative": {"name": "a", "id": -1},
    "id-too-big": {"name": "a", "id": 0x1_0000_0000},
    "role-bad": {"name": "a", "role": "boss"},
    "mode-bad": {"name": "a", "mode": "tap"},
    "rx-mode-bad": {"name": "a", "rx_mode": "busy"},
    "action-bad": {"name": "a", "action": "flood"},
    "secret-25": {"name": "a", "secret": "s" * 25},
    "ring-0": {"name": "a", "memory": {"log2_ring_size": 0}},
    "ring-15": {"name": "a", "memory": {"log2_ring_size": 15}},
    "ring-20": {"name": "a", "memory": {"log2_ring_size": 20}},
    "queues-0": {"name": "a", "memory": {"num_queue_pairs": 0}},
    "queues-256": {"name": "a", "memory": {"num_queue_pairs": 256}},
    "buffer-63": {"name": "a", "memory": {"packet_buffer_size": 63}},
    "buffer-65536": {"name": "a", "memory": {"packet_buffer_size": 65536}},
    "memory-extra": {"name": "a", "memory": {"hugepages": True}},
    "extra-field": {"name": "a", "colour": "red"},
    "xconnect-no-target": {"name": "a", "action": "xconnect"},
    "xconnect-null-target": {"name": "a", "action": "xconnect", "xconnect_to": None},
    "xconnect-empty-target": {"name": "a", "action": "xconnect", "xconnect_to": ""},
    "target-without-xconnect": {"name": "a", "xconnect_to": "b"},
}
# Strings pydantic's lax mode would coerce; the chart wants the YAML types.
STRICTER: dict[str, dict[str, Any]] = {
    "id-string": {"name": "a", "id": "7"},
    "admin-up-string": {"name": "a", "admin_up": "yes"},
}
# What JSON schema cannot say; the chart's templates check these (see test_chart.py).
TEMPLATE_CHECKED: dict[str, dict[str, Any]] = {
    "memory-over-4GiB": {"name": "a", "memory": {"num_queue_pairs": 128, "log2_ring_size": 14}},
    "secret-bytes": {"name": "a", "secret": "\u00e9" * 13},
    "xconnect-self": {"name": "a", "action": "xconnect", "xconnect_to": "a"},
}


def schema_accepts(values: dict[str, Any]) -> bool:
    return bool(VALIDATOR.is_valid(values))


def model_accepts(body: dict[str, Any]) -> bool:
    try:
        InterfaceSpec.model_validate(body)
    except ValidationError:
        return False
    return True


def test_committed_schema_is_up_to_date() -> None:
    committed = (CHART / "values.schema.json").read_text()
    assert committed == chart_schema.render(), (
        "regenerate: python -m memifd.cli.chart_schema > helm/memifd/values.schema.json"
    )


def test_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(chart_schema.values_schema())


@pytest.mark.parametrize("case", sorted(INTERFACES))
def test_schema_and_model_agree_on_interfaces(case: str) -> None:
    body = INTERFACES[case]
    assert schema_accepts({"interfaces": [body]}) == model_accepts(body)


@pytest.mark.parametrize("case", sorted(TEMPLATE_CHECKED))
def test_rules_beyond_json_schema_are_left_to_the_templates(case: str) -> None:
    body = TEMPLATE_CHECKED[case]
    assert schema_accepts({"interfaces": [body]})
    assert not model_accepts(body)


@pytest.mark.parametrize("case", sorted(STRICTER))
def test_schema_wants_yaml_types_where_the_model_coerces(case: str) -> None:
    body = STRICTER[case]
    assert not schema_accepts({"interfaces": [body]})
    assert model_accepts(body)


@pytest.mark.parametrize(
    ("field", "values"),
    [("role", Role), ("mode", Mode), ("rx_mode", RxMode), ("action", Action)],
)
def test_every_enum_value_of_the_model_is_accepted(field: str, values: Any) -> None:
    for value in values:
        body: dict[str, Any] = {"name": "a", field: value.value}
        if value is Action.XCONNECT:
            body["xconnect_to"] = "b"
        assert schema_accepts({"interfaces": [body]}), body
        assert model_accepts(body), body


@pytest.mark.parametrize("values_file", [CHART / "values.yaml", *CI_VALUES], ids=lambda p: p.name)
def test_committed_values_satisfy_the_schema(values_file: Any) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    values = _merge(defaults, yaml.safe_load(values_file.read_text()))
    errors = [error.message for error in VALIDATOR.iter_errors(values)]
    assert errors == []
    for body in values["interfaces"]:
        assert model_accepts(body), body


def test_schema_describes_every_default_value() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) <= set(chart_schema.values_schema()["properties"])
    assert json.loads((CHART / "values.schema.json").read_text())["additionalProperties"] is False


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over the defaults (maps merge, the rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged

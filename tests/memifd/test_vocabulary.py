"""One vocabulary: memifd's models say what the library says (aliases, limits, link
states, counter names), each declared once."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import memif
import pytest
from memif.config import MODE_ALIASES, ROLE_ALIASES, Arguments
from memif.constants import MAX_SOCKET_PATH, NAME_SIZE, SECRET_SIZE
from memifd.api.grpc import convert
from memifd.api.rest import metrics
from memifd.core.engine.state import Counters
from memifd.core.models import (
    ARGUMENT_FIELDS,
    INTERFACE_COUNTERS,
    QUEUE_COUNTERS,
    InterfaceSpec,
    InterfaceStats,
    InterfaceStatus,
    LinkDetails,
    LinkEvent,
    LinkState,
    QueueCounters,
)
from memifd.proto.memif.v1 import memif_pb2 as pb
from pydantic import ValidationError


@pytest.mark.parametrize(
    ("field", "spelling"),
    [("role", alias) for alias in ROLE_ALIASES]
    + [("mode", alias) for alias in MODE_ALIASES]
    + [("role", "SERVER"), ("mode", "IP"), ("mode", "Eth")],
)
def test_spec_and_arguments_take_the_same_spellings(field: str, spelling: str) -> None:
    spec = InterfaceSpec.model_validate({"name": "a", field: spelling})
    arguments = Arguments.model_validate({field: spelling})
    assert getattr(spec, field) is getattr(arguments, field)
    assert getattr(spec.to_arguments(), field) is getattr(arguments, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [("role", "boss"), ("mode", "tap"), ("id", -1), ("id", 1 << 32), ("rx_mode", "busy")],
)
def test_spec_and_arguments_refuse_the_same_values(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        Arguments.model_validate({field: value})
    with pytest.raises(ValidationError):
        InterfaceSpec.model_validate({"name": "a", field: value})


def test_the_fields_a_spec_shares_have_the_librarys_types_and_limits() -> None:
    shared = ("id", "role", "mode", "memory", "rx_mode", "accept_unsealed_regions")
    assert set(shared) <= set(ARGUMENT_FIELDS)
    for name in shared:
        ours, theirs = InterfaceSpec.model_fields[name], Arguments.model_fields[name]
        assert ours.annotation == theirs.annotation, name
        assert ours.metadata == theirs.metadata, name
    spec = InterfaceSpec(name="a", secret="s" * SECRET_SIZE, accept_unsealed_regions=True)
    assert spec.to_arguments().model_dump(include=set(ARGUMENT_FIELDS)) == spec.model_dump(
        include=set(ARGUMENT_FIELDS)
    )


def test_the_spec_limits_are_the_librarys_constants() -> None:
    InterfaceSpec(name="n" * NAME_SIZE, socket="s" * MAX_SOCKET_PATH, secret="s" * SECRET_SIZE)
    for body in (
        {"name": "n" * (NAME_SIZE + 1)},
        {"name": "a", "socket": "s" * (MAX_SOCKET_PATH + 1)},
        {"name": "a", "secret": "s" * (SECRET_SIZE + 1)},
    ):
        with pytest.raises(ValidationError):
            InterfaceSpec.model_validate(body)
    with pytest.raises(memif.LocalProtocolError, match=f"1..{MAX_SOCKET_PATH} bytes"):
        memif.Socket("/" + "s" * MAX_SOCKET_PATH)


def test_one_link_state_enum_everywhere() -> None:
    for model in (LinkEvent, InterfaceStatus, LinkDetails):
        assert typing.get_type_hints(model)["state"] is LinkState, model
    assert set(convert.LINK_STATES) == set(LinkState)
    assert all(isinstance(state, LinkState) for state in convert.LINK_STATES)
    names = {
        value.name.removeprefix("LINK_STATE_").lower() for value in pb.LinkState.DESCRIPTOR.values
    }
    assert names - {"unspecified"} == {state.value for state in LinkState}
    assert set(metrics._STATES) == set(LinkState) - {LinkState.DELETED}


def test_queue_counter_names_are_the_librarys() -> None:
    assert tuple(f.name for f in dataclasses.fields(memif.QueueStats)) == QUEUE_COUNTERS
    assert tuple(QueueCounters.model_fields) == QUEUE_COUNTERS
    assert tuple(pb.QueueStats.DESCRIPTOR.fields_by_name) == QUEUE_COUNTERS
    assert set(metrics._HELP) == set(QUEUE_COUNTERS)


def test_interface_counter_names_are_declared_once() -> None:
    assert tuple(f.name for f in dataclasses.fields(Counters)) == INTERFACE_COUNTERS
    stats_fields = [n for n in InterfaceStats.model_fields if n not in ("rx", "tx")]
    assert [n for n in stats_fields if not n.endswith("_queues")] == list(INTERFACE_COUNTERS)
    assert set(metrics._MANAGER_FIELDS) == set(INTERFACE_COUNTERS)


def test_counters_survive_the_grpc_round_trip() -> None:
    row = QueueCounters(**{name: index + 1 for index, name in enumerate(QUEUE_COUNTERS)})
    stats = InterfaceStats(
        rx=row, tx=row, rx_queues=[row], tx_queues=[row], **dict.fromkeys(INTERFACE_COUNTERS, 7)
    )
    assert convert.stats_from_proto(convert.stats_to_proto(stats)) == stats

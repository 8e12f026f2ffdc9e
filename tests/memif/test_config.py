"""Arguments and MemoryConfig: limits with errors naming the field and the limit, aliases."""

from __future__ import annotations

import pydantic
import pytest
from memif import Arguments, MemoryConfig, Mode, Role, RxMode


def only_error(exc: pydantic.ValidationError) -> tuple[tuple[str | int, ...], str]:
    (error,) = exc.errors()
    return tuple(error["loc"]), error["msg"]


def test_defaults() -> None:
    args = Arguments()
    assert args.role is Role.CLIENT and not args.is_server
    assert (args.id, args.name, args.secret, args.mode) == (0, "memif0", None, Mode.ETHERNET)
    assert args.rx_mode is RxMode.INTERRUPT and args.accept_unsealed_regions is False
    mem = args.memory
    assert (mem.num_queue_pairs, mem.log2_ring_size, mem.packet_buffer_size) == (1, 10, 2048)
    assert mem.ring_size == 1024
    assert mem.buffer_region_size == 2 * 1024 * 2048


@pytest.mark.parametrize(
    ("value", "role"),
    [
        ("master", Role.SERVER),
        ("slave", Role.CLIENT),
        ("server", Role.SERVER),
        ("client", Role.CLIENT),
        ("MASTER", Role.SERVER),
        ("Slave", Role.CLIENT),
        (Role.SERVER, Role.SERVER),
    ],
)
def test_role_aliases(value: str, role: Role) -> None:
    args = Arguments(role=value)
    assert args.role is role
    assert args.is_server is (role is Role.SERVER)


def test_unknown_role_names_the_field() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Arguments(role="boss")
    loc, msg = only_error(info.value)
    assert loc == ("role",) and "'server' or 'client'" in msg


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("ethernet", Mode.ETHERNET),
        ("eth", Mode.ETHERNET),
        ("IP", Mode.IP),
        ("punt-inject", Mode.PUNT_INJECT),
        ("punt_inject", Mode.PUNT_INJECT),
        ("punt", Mode.PUNT_INJECT),
    ],
)
def test_mode_aliases(value: str, mode: Mode) -> None:
    assert Arguments(mode=value).mode is mode


@pytest.mark.parametrize(
    ("mode", "number"), [(Mode.ETHERNET, 0), (Mode.IP, 1), (Mode.PUNT_INJECT, 2)]
)
def test_mode_wire_values(mode: Mode, number: int) -> None:
    assert mode.wire_value == number
    assert Mode.from_wire(number) is mode


def test_unknown_wire_mode() -> None:
    with pytest.raises(ValueError, match="unknown interface mode 3"):
        Mode.from_wire(3)


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [("id", -1, "greater than or equal to 0"), ("id", 1 << 32, "less than or equal to 4294967295")],
)
def test_id_is_u32(field: str, value: int, limit: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Arguments(**{field: value})
    assert only_error(info.value) == ((field,), f"Input should be {limit}")


def test_id_limits_are_inclusive() -> None:
    assert Arguments(id=0xFFFFFFFF).id == 0xFFFFFFFF


@pytest.mark.parametrize(
    ("name", "size"),
    [("n" * 33, 33), ("é" * 17, 34), ("€" * 11, 33)],
    ids=["ascii", "2-byte", "3-byte"],
)
def test_name_is_at_most_32_utf8_bytes(name: str, size: int) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Arguments(name=name)
    loc, msg = only_error(info.value)
    assert loc == ("name",)
    assert f"name must be at most 32 bytes in UTF-8, got {size}" in msg


def test_name_of_32_utf8_bytes_fits() -> None:
    assert Arguments(name="é" * 16).name == "é" * 16
    assert Arguments(name="n" * 32).name == "n" * 32


@pytest.mark.parametrize(("secret", "size"), [("s" * 25, 25), ("ü" * 13, 26)])
def test_secret_is_at_most_24_bytes(secret: str, size: int) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Arguments(secret=secret)
    loc, msg = only_error(info.value)
    assert loc == ("secret",)
    assert f"secret must be at most 24 bytes in UTF-8, got {size}" in msg


def test_secret_of_24_bytes_fits_and_empty_means_none() -> None:
    assert Arguments(secret="s" * 24).secret == "s" * 24
    assert Arguments(secret="").secret is None


@pytest.mark.parametrize("field", ["name", "secret"])
def test_strings_refuse_nul(field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Arguments(**{field: "a\x00b"})
    loc, msg = only_error(info.value)
    assert loc == (field,) and "NUL" in msg


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("num_queue_pairs", 0, "greater than or equal to 1"),
        ("num_queue_pairs", 256, "less than or equal to 255"),
        ("log2_ring_size", 0, "greater than or equal to 1"),
        ("log2_ring_size", 15, "less than or equal to 14"),
        ("packet_buffer_size", 63, "greater than or equal to 64"),
        ("packet_buffer_size", 65536, "less than or equal to 65535"),
    ],
)
def test_memory_limits_name_field_and_limit(field: str, value: int, limit: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        MemoryConfig(**{field: value})
    assert only_error(info.value) == ((field,), f"Input should be {limit}")
    with pytest.raises(pydantic.ValidationError) as nested:
        Arguments(memory={field: value})
    assert only_error(nested.value)[0] == ("memory", field)


def test_memory_limits_are_inclusive() -> None:
    mem = MemoryConfig(num_queue_pairs=255, log2_ring_size=1, packet_buffer_size=64)
    assert mem.ring_size == 2
    assert MemoryConfig(log2_ring_size=14, packet_buffer_size=65535).ring_size == 1 << 14


def test_memory_over_4_gib_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        MemoryConfig(num_queue_pairs=3, log2_ring_size=14, packet_buffer_size=65535)
    _, msg = only_error(info.value)
    assert "6442352640 bytes exceeds the limit of 4294967296" in msg
    assert "4 GiB" in msg and "num_queue_pairs" in msg


def test_memory_up_to_4_gib_is_allowed() -> None:
    assert MemoryConfig(num_queue_pairs=2, log2_ring_size=14, packet_buffer_size=65535)
    mem = MemoryConfig(num_queue_pairs=4, log2_ring_size=14, packet_buffer_size=32768)
    assert mem.buffer_region_size == 1 << 32


@pytest.mark.parametrize("model", [Arguments, MemoryConfig])
def test_unknown_fields_are_refused(model: type[pydantic.BaseModel]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        model(colour="red")
    assert only_error(info.value) == (("colour",), "Extra inputs are not permitted")


def test_models_are_frozen() -> None:
    args = Arguments()
    with pytest.raises(pydantic.ValidationError):
        args.id = 3  # type: ignore[misc]


def test_round_trip_through_json() -> None:
    args = Arguments(
        id=9,
        role="master",
        name="x",
        secret="pw",
        mode="ip",
        memory=MemoryConfig(num_queue_pairs=3),
        rx_mode="polling",
    )
    assert Arguments.model_validate_json(args.model_dump_json()) == args
    assert args.model_dump(mode="json")["role"] == "server"

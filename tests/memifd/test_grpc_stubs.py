"""The committed gRPC stubs match ``proto/memif/v1/memif.proto``."""

from __future__ import annotations

from pathlib import Path

from memifd.api.grpc import protogen
from memifd.proto.memif.v1 import memif_pb2, memif_pb2_grpc


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_committed_stubs_are_up_to_date(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    fresh, committed = _files(tmp_path), _files(protogen.PACKAGE_DIR)
    assert sorted(fresh) == sorted(committed), "run: python -m memifd.api.grpc.protogen"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}: run python -m memifd.api.grpc.protogen"


def test_stubs_import_under_memifd_proto() -> None:
    assert memif_pb2.PacketBatch.__module__ == "memifd.proto.memif.v1.memif_pb2"
    assert vars(memif_pb2_grpc)["memif_dot_v1_dot_memif__pb2"] is memif_pb2
    assert memif_pb2.DESCRIPTOR.name == "memif/v1/memif.proto"
    assert memif_pb2.DESCRIPTOR.package == "memif.v1"

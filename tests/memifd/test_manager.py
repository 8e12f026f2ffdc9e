"""The manager's worker against real Python memif peers on real sockets."""

from __future__ import annotations

import os
import time
from pathlib import Path

import memif
import pytest
from memifd.core.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from memifd.core.manager import Manager
from memifd.core.models import (
    CaptureFilter,
    InterfacePatch,
    InterfaceStats,
)
from memifd.core.settings import Settings
from memifd.core.subscription import Subscription

from tests.conftest import open_fds
from tests.memifd.rest_support import frame, memif_clients, receive, spec, wait_for
from tests.waiting import wait_until


def accounted(stats: InterfaceStats) -> int:
    return stats.action_drops + stats.forwarded + stats.forward_drops + stats.exchanged


def send_all(iface: memif.Interface, packets: list[bytes]) -> None:
    sent = 0

    def all_sent() -> bool:  # a full ring takes more as the peer reads
        nonlocal sent
        sent += iface.tx_queue(0).send_burst(packets[sent : sent + 256])
        return sent == len(packets)

    wait_until(all_sent, 5, 0.001, lambda: f"{sent} of {len(packets)} packets sent")


# -- Subscription ----------------------------------------------------------------------------------


def test_subscription_drops_oldest_and_counts() -> None:
    sub: Subscription[int] = Subscription(maxsize=4)
    assert sub.put_many([1, 2, 3]) == []
    assert sub.put_many([4, 5, 6]) == [1, 2]
    assert sub.dropped == 2
    assert sub.put_many(list(range(10, 20))) == [3, 4, 5, 6, 10, 11, 12, 13, 14, 15]
    assert sub.dropped == 12
    assert sub.get_batch(3, 0) == [16, 17, 18]
    sub.end("done")
    assert sub.get_batch(10, 0) == [19]
    assert sub.get_batch(10, 0) == []
    assert (sub.closed, sub.close_reason) == (True, "done")
    assert sub.put_many([1]) == [] and len(sub) == 0


def test_subscription_timeout_close_and_callback() -> None:
    closed: list[bool] = []
    sub: Subscription[int] = Subscription(maxsize=2, on_close=lambda: closed.append(True))
    assert sub.get_batch(5, timeout=0.01) == []
    assert not sub.closed
    sub.put(1)
    sub.close()
    sub.close()
    assert closed == [True]
    assert sub.get_batch(5, 0) == []
    assert sub.close_reason == "closed by subscriber"
    with pytest.raises(ValueError, match="maxsize"):
        Subscription(maxsize=0)


# -- create, conflicts, errors ---------------------------------------------------------------------


def test_create_get_list_delete(manager: Manager, sock_dir: Path) -> None:
    status = manager.create_interface(spec("a", secret="s3cret"))
    assert status.socket_path == str(sock_dir / "m.sock")
    assert status.has_secret and "s3cret" not in status.model_dump_json()
    assert status.state == "disconnected"
    assert os.path.exists(sock_dir / "m.sock")
    assert [s.name for s in manager.list_interfaces()] == ["a"]
    assert manager.get_interface("a").name == "a"
    manager.delete_interface("a")
    assert manager.list_interfaces() == []
    assert not os.path.exists(sock_dir / "m.sock")
    with pytest.raises(NotFoundError, match="'a' not found"):
        manager.get_interface("a")


def test_dry_run_creates_nothing(manager: Manager, sock_dir: Path) -> None:
    status = manager.create_interface(spec("a"), dry_run=True)
    assert status.name == "a" and status.stats.rx_queues[0].packets == 0
    assert manager.list_interfaces() == []
    assert not os.path.exists(sock_dir / "m.sock")


def test_conflicts_and_invalid_arguments(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a", id=1))
    with pytest.raises(ConflictError, match="already exists"):
        manager.create_interface(spec("a", id=2))
    with pytest.raises(ConflictError, match="id 1 already exists"):
        manager.create_interface(spec("b", id=1))
    with pytest.raises(ConflictError, match="id 1 already exists"):  # same socket, absolute path
        manager.create_interface(spec("b", id=1, socket=str(sock_dir / "m.sock")))
    manager.create_interface(spec("c", id=1, role="client", admin_up=False))  # other role: fine
    with pytest.raises(InvalidArgumentError) as err:
        manager.create_interface(spec("d", action="xconnect", xconnect_to="nope"))
    assert err.value.field == "xconnect_to" and "'nope' does not exist" in err.value.message
    with pytest.raises(InvalidArgumentError) as err:
        manager.create_interface(spec("e", socket="x" * 100))
    assert err.value.field == "socket" and "limit is 107" in err.value.message
    with pytest.raises(NotFoundError):
        manager.delete_interface("zz")
    with pytest.raises(NotFoundError):
        manager.update_interface("zz", InterfacePatch(admin_up=False))
    with pytest.raises(ConflictError, match="not connected"):
        manager.inject("a", [frame(0)])
    with pytest.raises(InvalidArgumentError) as err:
        manager.inject("a", [b""])
    assert err.value.field == "packets" and "1..65535" in err.value.message
    with pytest.raises(NotFoundError):
        manager.capture(CaptureFilter(interface="zz"))


def test_socket_in_use_by_another_listener_is_a_conflict(sock_dir: Path) -> None:
    with memif.Socket(str(sock_dir / "m.sock")) as other:
        other.create_interface(id=0, role="server")
        mgr = Manager(Settings(socket_dir=sock_dir))
        mgr.start()
        try:
            with pytest.raises(ConflictError, match="in use"):
                mgr.create_interface(spec("a"))
            assert mgr.socket_paths() == []
        finally:
            mgr.stop()


# -- actions and accounting ------------------------------------------------------------------------


def test_echo_returns_every_packet(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a", action="echo"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        packets = [frame(i, 60 + i) for i in range(500)]
        send_all(client, packets[:250])
        got = receive(client, 250)
        send_all(client, packets[250:])
        got += receive(client, 250)
        assert sorted(got) == sorted(packets)
        assert wait_for(lambda: manager.interface_stats("a").forwarded == 500)
        stats = manager.interface_stats("a")
        assert stats.rx.packets == 500 and stats.tx.packets == 500
        assert stats.forwarded == 500 and accounted(stats) == 500


def test_drop_counts_only(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        send_all(client, [frame(i) for i in range(300)])
        assert wait_for(lambda: manager.interface_stats("a").action_drops == 300)
        stats = manager.interface_stats("a")
        assert stats.tx.packets == 0 and accounted(stats) == stats.rx.packets == 300
        assert receive(client, 1, timeout=0.1) == []


def test_xconnect_forwards_and_counts_what_cannot_go_on(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("b", id=1))
    manager.create_interface(spec("a", id=0, action="xconnect", xconnect_to="b"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (ca,):
        assert ca.wait_connected(5)
        send_all(ca, [frame(i) for i in range(100)])  # b has no peer: nowhere to go
        assert wait_for(lambda: manager.interface_stats("a").forward_drops == 100)
        with memif_clients(str(sock_dir / "m.sock"), [1], memory={"log2_ring_size": 6}) as (cb,):
            assert cb.wait_connected(5)
            packets = [frame(i) for i in range(200)]
            send_all(ca, packets[:50])
            assert receive(cb, 50) == packets[:50]
            # cb does not read: its 64-slot ring fills and the rest is dropped on a
            send_all(ca, packets[50:200])
            assert wait_for(lambda: accounted(manager.interface_stats("a")) == 300)
            a, b = manager.interface_stats("a"), manager.interface_stats("b")
            assert a.rx.packets == 300 and a.forwarded == 50 + 64
            assert a.forward_drops == 100 + 150 - 64
            assert b.tx.packets == 114 and b.tx.ring_full == 150 - 64


def test_declared_interfaces_may_xconnect_each_other(sock_dir: Path) -> None:
    settings = Settings(
        socket_dir=sock_dir,
        interfaces=[
            {"name": "a", "socket": "m.sock", "id": 0, "action": "xconnect", "xconnect_to": "b"},
            {"name": "b", "socket": "m.sock", "id": 1, "action": "xconnect", "xconnect_to": "a"},
        ],
    )
    mgr = Manager(settings)
    mgr.start()
    try:
        assert [(s.name, s.xconnect_to) for s in mgr.list_interfaces()] == [("a", "b"), ("b", "a")]
        with memif_clients(str(sock_dir / "m.sock"), [0, 1]) as (ca, cb):
            assert ca.wait_connected(5) and cb.wait_connected(5)
            send_all(cb, [frame(7)])
            assert receive(ca, 1) == [frame(7)]
    finally:
        mgr.stop()


def test_patch_rx_mode_action_and_admin(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        status = manager.update_interface("a", InterfacePatch(rx_mode="polling", action="echo"))
        assert (status.rx_mode, status.action) == ("polling", "echo")
        send_all(client, [frame(1), frame(2)])
        assert receive(client, 2) == [frame(1), frame(2)]
        with pytest.raises(InvalidArgumentError) as err:
            manager.update_interface("a", InterfacePatch(action="xconnect"))
        assert err.value.field == "xconnect_to"
        manager.update_interface("a", InterfacePatch(rx_mode="interrupt"))
        send_all(client, [frame(3)])
        assert receive(client, 1) == [frame(3)]
        status = manager.update_interface("a", InterfacePatch(admin_up=False))
        assert not status.admin_up
        assert client.wait_disconnected(5)
        assert "administratively down" in client.disconnect_reason
        manager.update_interface("a", InterfacePatch(admin_up=True))
        assert client.wait_connected(5)


# -- streams ---------------------------------------------------------------------------------------


def test_capture_filters_count_and_snaplen(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a", action="echo"))
    rx_only = manager.capture(CaptureFilter(interface="a", direction="rx", count=5, snaplen=20))
    both = manager.capture(CaptureFilter(interface="a"))
    everything = manager.capture(CaptureFilter(count=3))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        packets = [frame(i, 100) for i in range(10)]
        send_all(client, packets)
        assert len(receive(client, 10)) == 10
        got = rx_only.get_batch(100, 5)
        assert [p.data for p in got] == [p[:20] for p in packets[:5]]
        assert {(p.direction, p.orig_len, p.interface) for p in got} == {("rx", 100, "a")}
        assert rx_only.get_batch(100, 0) == [] and rx_only.close_reason == "count reached"
        assert wait_for(lambda: len(both) == 20)
        seen = both.get_batch(100, 0)
        assert sorted(p.direction for p in seen) == ["rx"] * 10 + ["tx"] * 10
        assert [p.data for p in seen if p.direction == "tx"] == packets
        assert len(everything.get_batch(100, 1)) == 3 and everything.closed
        both.close()
    manager.delete_interface("a")


def test_capture_duration_and_interface_deleted(manager: Manager) -> None:
    manager.create_interface(spec("a"))
    timed = manager.capture(CaptureFilter(interface="a", duration=0.2))
    open_ended = manager.capture(CaptureFilter(interface="a"))
    assert timed.get_batch(10, 5) == [] and timed.close_reason == "duration reached"
    manager.delete_interface("a")
    assert open_ended.get_batch(10, 5) == []
    assert open_ended.close_reason == "interface deleted"


def test_slow_subscriber_loses_oldest_and_it_is_counted(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a"))
    slow = manager.capture(CaptureFilter(interface="a"), maxsize=10)
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        packets = [frame(i) for i in range(50)]
        send_all(client, packets)
        assert wait_for(lambda: manager.interface_stats("a").rx.packets == 50)
        assert [p.data for p in slow.get_batch(100, 0)] == packets[40:]
        assert slow.dropped == 40
        assert manager.interface_stats("a").subscriber_drops == 40
        assert manager.subscription_drops >= 40


def test_exchange_takes_packets_instead_of_the_action(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a", action="echo"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        session = manager.exchange("a")
        with pytest.raises(ConflictError, match="already has an exchange"):
            manager.exchange("a")
        send_all(client, [frame(1)])
        got = session.rx.get_batch(10, 5)
        assert [p.data for p in got] == [frame(1)]
        assert receive(client, 1, timeout=0.1) == []  # not echoed while the exchange holds it
        assert session.send([frame(2), frame(3)]).accepted == 2
        assert receive(client, 2) == [frame(2), frame(3)]
        session.close()
        assert wait_for(lambda: manager.subscription_counts()["exchange"] == 0)
        send_all(client, [frame(4)])
        assert receive(client, 1) == [frame(4)]  # echo is back
        assert wait_for(lambda: manager.interface_stats("a").forwarded == 1)
        stats = manager.interface_stats("a")
        assert (stats.exchanged, stats.forwarded, stats.injected) == (1, 1, 2)
        assert accounted(stats) == stats.rx.packets == 2


def test_inject_queue_limits(manager: Manager, sock_dir: Path) -> None:
    manager.create_interface(spec("a"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        with pytest.raises(InvalidArgumentError) as err:
            manager.inject("a", [frame(0)], queue=1)
        assert err.value.field == "queue" and "0..0" in err.value.message
        result = manager.inject("a", [frame(i) for i in range(2000)])
        assert result.accepted == 1024 and result.ring_full == 2000 - 1024


def test_events_follow_the_link(manager: Manager, sock_dir: Path) -> None:
    events = manager.subscribe_events()
    manager.create_interface(spec("a"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        assert wait_for(lambda: manager.get_interface("a").state == "connected")
        peer = manager.get_interface("a").peer
        assert peer is not None and peer.pid == os.getpid() and peer.name == "py0"
    assert wait_for(lambda: manager.get_interface("a").state == "disconnected")
    manager.delete_interface("a")
    got = []
    while batch := events.get_batch(100, 0.2):
        got += batch
    # the library reports every step, a handshake that ends within one loop turn too
    assert [e.state for e in got] == ["connecting", "connected", "disconnected", "deleted"]
    got = got[1:]
    assert got[0].peer is not None and got[0].peer.name == "py0"
    assert got[1].reason and got[1].peer is not None
    assert got[2].reason == "interface deleted"


# -- idle cost and shutdown ------------------------------------------------------------------------


def test_idle_worker_sleeps(manager: Manager, sock_dir: Path) -> None:
    for i in range(4):
        manager.create_interface(spec(f"a{i}", id=i))
    with memif_clients(str(sock_dir / "m.sock"), list(range(4))) as clients:
        assert all(c.wait_connected(5) for c in clients)
        assert wait_for(lambda: all(s.state == "connected" for s in manager.list_interfaces()))

        def idle() -> bool:  # no turn in 0.1 s: the connections' work is done
            before = manager.turns
            time.sleep(0.1)
            return manager.turns == before

        wait_until(idle, 5, 0, "the worker to go idle")
        before = manager.turns
        time.sleep(0.5)  # idle on purpose: the turns taken meanwhile are the measure
        assert manager.turns - before <= 2  # woken by nothing but, at most, a timer


def test_stop_disconnects_peers_with_reason(sock_dir: Path) -> None:
    mgr = Manager(Settings(socket_dir=sock_dir))
    mgr.start()
    mgr.create_interface(spec("a"))
    mgr.create_interface(spec("b", socket="other.sock"))
    events = mgr.subscribe_events()
    cap = mgr.capture(CaptureFilter())
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        mgr.stop("maintenance")
        assert client.wait_disconnected(5)
        assert "maintenance" in client.disconnect_reason
    assert os.listdir(sock_dir) == []
    assert cap.get_batch(10, 1) == [] and cap.close_reason == "maintenance"
    while events.get_batch(100, 0):
        pass
    assert events.closed and events.close_reason == "maintenance"
    assert not mgr.ready and not mgr.running
    with pytest.raises(UnavailableError):
        mgr.create_interface(spec("c"))
    mgr.stop()  # idempotent


def test_no_fd_is_left_behind(sock_dir: Path) -> None:
    before = open_fds()
    mgr = Manager(Settings(socket_dir=sock_dir))
    mgr.start()
    mgr.create_interface(spec("a", action="echo", rx_mode="polling"))
    mgr.create_interface(spec("b", id=1))
    mgr.create_interface(spec("c", socket="c.sock", role="client"))
    with memif_clients(str(sock_dir / "m.sock"), [0, 1]) as clients:
        assert all(c.wait_connected(5) for c in clients)
        send_all(clients[0], [frame(1)])
        assert receive(clients[0], 1) == [frame(1)]
        mgr.delete_interface("b")
        mgr.stop()
    assert open_fds() == before

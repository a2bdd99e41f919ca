"""Tests of OBD-II over ISO-TP against a simulated ECU on python-can's virtual bus."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import can
import pytest

from device_bridge.exceptions import (
    IsoTpProtocolError,
    ObdNegativeResponseError,
    ObdNoResponseError,
)
from device_bridge.isotp import IsoTpLink
from device_bridge.obd import PIDS, VIN_PATH, ObdClient, ObdPoller
from device_bridge.obd_sim import SimulatedEcu

VIN = "KMHK381GFKU012345"
VALUES = {0x0D: 87, 0x0C: 2150.25, 0x05: 91, 0x2F: 40, 0xA6: 123456.7, 0x42: 14.2}


@pytest.fixture
def channel() -> str:
    return f"obd-{uuid.uuid4().hex}"


@pytest.fixture
def tester(channel: str) -> Iterator[ObdClient]:
    bus = can.Bus(interface="virtual", channel=channel)
    yield ObdClient(bus, timeout_s=0.5)
    bus.shutdown()


def test_mode_01_pids_decode_with_the_standard_formulas(channel: str, tester: ObdClient) -> None:
    with SimulatedEcu(channel, VALUES, VIN):
        read = {PIDS[p].vss: tester.read_pid(p) for p in PIDS}
    assert read == {
        "Vehicle.Speed": 87.0,
        "Vehicle.OBD.EngineSpeed": 2150.25,
        "Vehicle.OBD.CoolantTemperature": 91.0,
        "Vehicle.Powertrain.FuelSystem.RelativeLevel": 40,
        "Vehicle.TraveledDistance": 123456.7,
        "Vehicle.LowVoltageBattery.CurrentVoltage": 14.2,
    }


def test_the_vin_arrives_over_a_multi_frame_transfer(channel: str, tester: ObdClient) -> None:
    with SimulatedEcu(channel, VALUES, VIN):
        assert tester.read_vin() == VIN


def test_the_supported_pid_bitmaps_list_the_ecus_pids(channel: str, tester: ObdClient) -> None:
    with SimulatedEcu(channel, VALUES, VIN):
        assert set(VALUES) <= tester.supported_pids()
        assert 0x11 not in tester.supported_pids()


def test_an_unsupported_pid_is_a_negative_response(channel: str, tester: ObdClient) -> None:
    with SimulatedEcu(channel, {0x0D: 10}, VIN), pytest.raises(ObdNegativeResponseError) as info:
        tester.read_pid(0x0C)
    assert info.value.code == 0x12


def test_no_ecu_is_a_no_response_error(tester: ObdClient) -> None:
    with pytest.raises(ObdNoResponseError):
        tester.read_pid(0x0D)


def test_the_poller_maps_pids_and_vin_to_vss_readings(channel: str, tester: ObdClient) -> None:
    with SimulatedEcu(channel, {0x0D: 42, 0x2F: 75}, VIN):
        poller = ObdPoller(tester, lambda readings: None)
        readings = poller.poll_once(with_vin=True)
    assert {(r.path, r.value) for r in readings} == {
        ("Vehicle.Speed", 42.0),
        ("Vehicle.Powertrain.FuelSystem.RelativeLevel", 75),
        (VIN_PATH, VIN),
    }
    assert poller.errors == 0


def test_a_consecutive_frame_out_of_sequence_is_a_protocol_error(channel: str) -> None:
    ecu = can.Bus(interface="virtual", channel=channel)
    tester = can.Bus(interface="virtual", channel=channel)
    link = IsoTpLink(tester, 0x7E0, 0x7E8, timeout_s=0.5)
    ecu.send(
        can.Message(arbitration_id=0x7E8, data=b"\x10\x14\x49\x02\x01KMH", is_extended_id=False)
    )
    ecu.send(can.Message(arbitration_id=0x7E8, data=b"\x22K381GFK", is_extended_id=False))
    with pytest.raises(IsoTpProtocolError, match="expected 1"):
        link.recv()
    flow_control = ecu.recv(0.5)
    assert flow_control is not None
    assert flow_control.arbitration_id == 0x7E0
    assert flow_control.data[0] == 0x30
    ecu.shutdown()
    tester.shutdown()


def test_a_sender_honours_the_receivers_block_size(channel: str) -> None:
    a = can.Bus(interface="virtual", channel=channel)
    b = can.Bus(interface="virtual", channel=channel)
    sender = IsoTpLink(a, 0x700, 0x708, timeout_s=1.0)
    receiver = IsoTpLink(b, 0x708, 0x700, timeout_s=1.0, block_size=2)
    payload = bytes(range(40))
    import threading

    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(receiver.recv()))
    thread.start()
    sender.send(payload)
    thread.join(5)
    assert got == [payload]
    a.shutdown()
    b.shutdown()

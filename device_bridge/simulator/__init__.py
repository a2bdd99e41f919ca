"""Fleet simulator: physically consistent EV traffic encoded with the real DBCs, plus truth."""

from device_bridge.simulator.encoding import Frame, FrameEncoder, frames_to_messages, write_candump
from device_bridge.simulator.exceptions import SimulationError
from device_bridge.simulator.fleet import (
    SUPPORTED_MODELS,
    FleetOptions,
    FleetResult,
    fleet_configs,
    fleet_frames,
    live_frames,
    simulate_fleet,
    vehicle_frames,
    write_fleet,
)
from device_bridge.simulator.truth import (
    ChargingSession,
    GroundTruth,
    HarshEvent,
    Rollback,
    Trip,
)
from device_bridge.simulator.vehicle import Segment, VehicleConfig, VehicleTrace, simulate_vehicle

__all__ = [
    "SUPPORTED_MODELS",
    "ChargingSession",
    "FleetOptions",
    "FleetResult",
    "Frame",
    "FrameEncoder",
    "GroundTruth",
    "HarshEvent",
    "Rollback",
    "Segment",
    "SimulationError",
    "Trip",
    "VehicleConfig",
    "VehicleTrace",
    "fleet_configs",
    "fleet_frames",
    "frames_to_messages",
    "live_frames",
    "simulate_fleet",
    "simulate_vehicle",
    "vehicle_frames",
    "write_candump",
    "write_fleet",
]

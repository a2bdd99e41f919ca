"""Vehicle models the simulator drives: battery, body and drivetrain figures per mapping."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODELS", "ModelSpec", "get_model"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Physical figures of one vehicle model.

    Attributes:
        name: the bridge mapping the model's frames decode with.
        nominal_kwh: nominal usable battery energy of a new pack.
        cells_series: cells in series; the pack's open-circuit voltage is this times a cell's.
        resistance_ohm: pack internal resistance.
        mass_kg: test mass with driver.
        cda_m2: drag coefficient times frontal area.
        crr: rolling resistance coefficient.
        wheel_radius_m: dynamic wheel radius.
        gear_ratio: motor revolutions per wheel revolution.
        motor_kw: peak motor power.
        regen_kw: peak regenerative braking power.
        ac_kw: on-board charger limit.
        dc_kw: peak DC fast-charging power the pack accepts.
        thermal_kj_per_k: pack heat capacity.
    """

    name: str
    nominal_kwh: float
    cells_series: int
    resistance_ohm: float
    mass_kg: float
    cda_m2: float
    crr: float
    wheel_radius_m: float
    gear_ratio: float
    motor_kw: float
    regen_kw: float
    ac_kw: float
    dc_kw: float
    thermal_kj_per_k: float


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "hyundai_kona_ev_2019",
            64.0,
            98,
            0.09,
            1830,
            0.62,
            0.010,
            0.33,
            7.981,
            150,
            60,
            7.2,
            77,
            420,
        ),
        ModelSpec(
            "tesla_model3", 75.0, 96, 0.07, 1920, 0.51, 0.009, 0.35, 9.04, 258, 75, 11.0, 150, 480
        ),
        ModelSpec(
            "nissan_leaf_2018", 40.0, 96, 0.12, 1650, 0.70, 0.010, 0.32, 8.19, 110, 50, 6.6, 50, 300
        ),
        ModelSpec(
            "hyundai_canfd",
            77.4,
            192,
            0.12,
            2100,
            0.68,
            0.010,
            0.36,
            10.65,
            225,
            80,
            10.9,
            150,
            500,
        ),
    )
}


def get_model(name: str) -> ModelSpec:
    """Return a model's figures.

    Raises:
        KeyError: the simulator has no such model (see `MODELS`).
    """
    return MODELS[name]

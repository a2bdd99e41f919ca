"""Grid integration: charging sessions and their flexibility, grid regions declared by owners,
and demand-response settlement against the "10 of 10" baseline, with OpenADR 3 resources.

Pure, versioned functions of verified readings (`params.VERSION`), one module a job:
`params`, `sessions`, `settlement`, `region`, `geo`, `openadr`. The indexer
(`indexer.apps.energy`) gathers the readings a caller may use and stores the declarations
and OpenADR objects in its tables.

**Power.** `Charging.Power` readings (kW into the car) are held from one reading to the next,
at most `max_hold_s`; past that, and where there is no reading, the car draws nothing (its
buses sleep when it is not charging). Energy over a window is the integral of that step
function clipped to the window.

**Sessions.** Runs of `Charging.IsCharging` true (the indexer's segmentation, as
`indexer.queries.charging_sessions`). Plug-in and plug-out are the first and last
`IsChargingCableConnected` true readings of the run of such readings around the session, or
the session's own ends when the car does not report the cable. Flexibility: charging at the
session's peak power needs `energy / peak` hours; the rest of the plugged time is slack. The
energy that could move is `min(energy, peak * slack)` kWh, and the load that could be shed is
the mean power while charging (kW), for as long as the slack lasts.

**Baseline ("10 of 10").** The baseline of an event window is the mean energy over the same
local clock window on the 10 most recent comparable days before it (weekdays for a weekday,
weekend days for a weekend day) in the last `lookback_days`, skipping days of other events of
the same programme and days the caller may not read. Fewer than `min_baseline_days` such
days: no settlement for that vehicle. Delivered energy is baseline minus actual; a vehicle
with no power or charging reading inside the window delivered nothing measurable (a silent
device is not a reduction).

**Regions.** The owner declares a vehicle's grid region with an EIP-712 signature
`GridRegion(uint256 vehicleId,string region,uint64 issuedAt)` under the DIMO domain of the
`VehicleId` contract. The API stores it; anyone can check it. It needs no position; a
declaration by a former owner no longer counts.

**Geometric regions.** A utility may publish a region as a GeoJSON (RFC 7946) Polygon or
MultiPolygon in WGS 84 longitude/latitude, with a name. A vehicle is placed where its load is:
at the instant of its first `IsCharging` true reading in the window that the caller may read
(where it charges), or at the window start if there is none, it is at its latest position
fix (a `CurrentLocation.Latitude` and `.Longitude` reading at the same time) at or before
that instant and no older than `position_max_age_s` (a parked car's device sleeps). The point is in
the region if it is in a polygon's exterior ring and in none of its holes (even-odd rule, exact
arithmetic; a point on a ring counts as inside). Rings must be closed; their orientation is not
used. A region crossing the antimeridian must be split there into a MultiPolygon, as RFC 7946
asks; no wrapping is done. Position placement needs LOCATION: a vehicle whose position the
caller may not read falls back to its owner's declaration of the region's name, or is
withheld. Results name the method of each placement and the readings behind it
(`PLACEMENT_VERSION`), never the coordinates.
"""

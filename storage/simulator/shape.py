"""A drawn fleet's shape: names, GPU models per node, shared facility units and their PromQL.

:class:`ScenarioSpec` is a :class:`~storage.simulator.spec.FleetSpec` whose names, GPU models
and facility components come from a randomized scenario (:mod:`storage.simulator.scenario`)
instead of the fixed ``gpu-node-001`` / one-PDU-CRAC-leaf-per-rack layout. A PDU, cooling unit or
switch may serve one rack, a few adjacent racks or the whole fleet; its metrics have a vendor's
Prometheus names and labels, reached only through the topology's PromQL (the metric keys stay
the ones features and explanations know: ``output_watts``, ``output_volts``,
``supply_temp_celsius``, ``port_errors_total``).
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.types import Component, ComponentKind, Rack, Topology
from storage.simulator.spec import FleetSpec


@dataclass(frozen=True)
class GpuModel:
    """A GPU model's board power, clocks, memory and thermal constants."""

    name: str  # DCGM modelName
    tdp: float  # board power (W)
    idle: tuple[float, float]  # idle power range (W)
    r_scale: float  # thermal resistance relative to the H100's (r0 x TDP stays ~43 °C)
    temp_off: float  # °C warmer (or cooler) than an H100 at the same heat
    sm_max: float  # SM clock at light load (MHz)
    mem_clock: float  # memory clock (MHz)
    fb_mib: float  # framebuffer (MiB)


GPU_MODELS: dict[str, GpuModel] = {
    "h100": GpuModel(
        "NVIDIA H100 80GB HBM3", 700.0, (62.0, 80.0), 1.0, 0.0, 1980.0, 2619.0, 81559.0
    ),
    "h200": GpuModel("NVIDIA H200", 700.0, (70.0, 90.0), 0.95, 1.5, 1980.0, 3201.0, 143771.0),
    "a100": GpuModel(
        "NVIDIA A100-SXM4-80GB", 400.0, (50.0, 62.0), 1.7, -2.0, 1410.0, 1593.0, 81920.0
    ),
    "l40s": GpuModel("NVIDIA L40S", 350.0, (44.0, 56.0), 2.1, 3.0, 2520.0, 9001.0, 46068.0),
    "b200": GpuModel("NVIDIA B200", 1000.0, (120.0, 150.0), 0.72, 2.0, 1965.0, 3996.0, 183359.0),
}

# Facility vocabularies per kind: (Prometheus names per metric key, the label naming the unit).
FACILITY_VOCABULARIES: dict[str, tuple[tuple[tuple[tuple[str, str], ...], str], ...]] = {
    "pdu": (
        ((("output_watts", "pdu_output_watts"), ("output_volts", "pdu_output_volts")), "pdu"),
        (
            (("output_watts", "pdu_outlet_power_watts"), ("output_volts", "pdu_outlet_voltage")),
            "pdu_name",
        ),
        (
            (
                ("output_watts", "apc_pdu_active_power_watts"),
                ("output_volts", "apc_pdu_phase_voltage_volts"),
            ),
            "device",
        ),
        (
            (
                ("output_watts", "raritan_pdu_inlet_activepower_watt"),
                ("output_volts", "raritan_pdu_inlet_voltage_volt"),
            ),
            "pdu_id",
        ),
        (
            (
                ("output_watts", "sentry_infeed_power_watts"),
                ("output_volts", "sentry_infeed_voltage_volts"),
            ),
            "tower",
        ),
    ),
    "cooling": (
        ((("supply_temp_celsius", "crac_supply_air_celsius"),), "unit"),
        ((("supply_temp_celsius", "crah_supply_air_temp_c"),), "crah"),
        ((("supply_temp_celsius", "liebert_supply_air_temperature_celsius"),), "unit_name"),
        ((("supply_temp_celsius", "cdu_secondary_supply_temp_c"),), "cdu"),
        ((("supply_temp_celsius", "ahu_discharge_air_temperature_celsius"),), "ahu"),
    ),
    "switch": (
        ((("port_errors_total", "switch_port_errors_total"),), "switch"),
        ((("port_errors_total", "ib_port_rcv_errors_total"),), "switch_name"),
        ((("port_errors_total", "snmp_if_in_errors_total"),), "sysName"),
        ((("port_errors_total", "sonic_port_errors_total"),), "device"),
        ((("port_errors_total", "ufm_port_symbol_errors_total"),), "node_desc"),
    ),
}

# Name patterns: nodes (n: fleet index from 1, r: rack from 1, k: slot from 1), racks, components.
NODE_PATTERNS = (
    "gpu-node-{n:03d}",
    "dgx-{r:02d}-{k:02d}",
    "hgx{n:04d}",
    "compute-r{r}-n{k}",
    "gn{n:03d}.hpc.internal",
)
RACK_PATTERNS = ("rack-a{i}", "r{i:02d}", "row{row}-rack{i}", "R{i:03d}")
COMPONENT_PATTERNS: dict[str, tuple[str, ...]] = {
    "pdu": ("pdu-a{i}", "rpp-{i:02d}", "apc-pdu-{i}", "PDU{i:03d}", "busway-{row}-{i}"),
    "cooling": ("crac-a{i}", "crah-{row}{i}", "cdu-{i:02d}", "liebert-{i}", "AHU-{i}"),
    "switch": ("leaf-a{i}", "tor-{row}{i}", "ib-leaf-{i:02d}", "sw-{i:03d}", "qm9700-{i}"),
}


@dataclass(frozen=True)
class FacilityUnit:
    """One PDU, cooling unit or switch: its racks and how its exporter names its metrics."""

    id: str
    kind: ComponentKind
    racks: tuple[int, ...]
    names: tuple[tuple[str, str], ...]  # (topology metric key, Prometheus metric name)
    label: str  # the label whose value is ``id``

    def promql(self, key: str) -> str:
        """Return the PromQL selecting this unit's ``key`` metric."""
        return f'{dict(self.names)[key]}{{{self.label}="{self.id}"}}'


@dataclass(frozen=True)
class ScenarioSpec(FleetSpec):
    """A fleet drawn by a scenario: its own names, GPU models and shared facility units."""

    nodes: tuple[str, ...] = ()  # every node name, rack-major
    rack_ids: tuple[str, ...] = ()
    node_models: tuple[str, ...] = ()  # a key of GPU_MODELS per node
    units: tuple[FacilityUnit, ...] = ()

    def __post_init__(self) -> None:
        """Check the names and units fit the shape."""
        super().__post_init__()
        if len(self.nodes) != self.n_nodes or len(set(self.nodes)) != self.n_nodes:
            raise ValueError("ScenarioSpec.nodes must name every node once")
        if len(self.rack_ids) != self.racks or len(self.node_models) != self.n_nodes:
            raise ValueError("ScenarioSpec needs one id per rack and one GPU model per node")
        for kind in ("pdu", "cooling", "switch"):
            served = sorted(r for u in self.units if u.kind == kind for r in u.racks)
            if served != list(range(self.racks)):
                raise ValueError(f"every rack needs exactly one {kind} unit")

    def rack_id(self, r: int) -> str:
        """Return the id of rack ``r``."""
        return self.rack_ids[r]

    def _unit_of(self, kind: str, r: int) -> str:
        """Return the id of the ``kind`` unit serving rack ``r``."""
        return next(u.id for u in self.units if u.kind == kind and r in u.racks)

    def pdu_id(self, r: int) -> str:
        """Return the PDU feeding rack ``r``."""
        return self._unit_of("pdu", r)

    def crac_id(self, r: int) -> str:
        """Return the cooling unit of rack ``r``."""
        return self._unit_of("cooling", r)

    def leaf_id(self, r: int) -> str:
        """Return the switch of rack ``r``."""
        return self._unit_of("switch", r)

    def node_name(self, n: int) -> str:
        """Return the name of node ``n``."""
        return self.nodes[n]

    @property
    def node_names(self) -> tuple[str, ...]:
        """Return every node name in rack order."""
        return self.nodes

    def component_rack(self, component_id: str) -> int | None:
        """Return the first rack a component serves, or None."""
        racks = self.component_racks(component_id)
        return racks[0] if racks else None

    def component_racks(self, component_id: str) -> tuple[int, ...]:
        """Return every rack a component serves."""
        return next((u.racks for u in self.units if u.id == component_id), ())

    def components_of_kind(self, kind: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Return the distinct units of ``kind`` and their racks."""
        return tuple((u.id, u.racks) for u in self.units if u.kind == kind)

    def unit(self, component_id: str) -> FacilityUnit:
        """Return the facility unit ``component_id``."""
        return next(u for u in self.units if u.id == component_id)

    def model(self, n: int) -> GpuModel:
        """Return the GPU model of node ``n``."""
        return GPU_MODELS[self.node_models[n]]

    def model_name(self, n: int) -> str:
        """Return DCGM's ``modelName`` of node ``n``."""
        return self.model(n).name

    def topology(self) -> Topology:
        """Return the topology with every unit's drawn PromQL."""
        racks = tuple(
            Rack(
                id=self.rack_ids[r],
                nodes=self.nodes[r * self.nodes_per_rack : (r + 1) * self.nodes_per_rack],
                power=(self.pdu_id(r),),
                cooling=(self.crac_id(r),),
                network=(self.leaf_id(r),),
            )
            for r in range(self.racks)
        )
        components = {
            u.id: Component(id=u.id, kind=u.kind, metrics={k: u.promql(k) for k, _n in u.names})
            for u in self.units
        }
        return Topology(racks=racks, components=components)

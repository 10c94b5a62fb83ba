"""The simulated fleet's shape: racks x nodes x GPUs, names, labels and the topology."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from analysis.types import Component, Rack, Topology

MODEL_NAME = "NVIDIA H100 80GB HBM3"
# PCI bus ids of the eight SXM GPUs of an HGX H100 baseboard, in nvidia-smi order.
HGX_BUS_IDS = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
FANS_PER_NODE = 6
PSUS = ("PSU1 12V", "PSU2 12V")

# Exporter ports as the real exporters use them (instance="<node>:<port>").
DCGM_PORT = 9400
IPMI_PORT = 9290
NODE_PORT = 9100
UP_JOBS = ("dcgm", "ipmi", "node")
JOB_PORTS = {"dcgm": DCGM_PORT, "ipmi": IPMI_PORT, "node": NODE_PORT}


@dataclass(frozen=True)
class FleetSpec:
    """Shape of the simulated fleet (default 4 racks x 8 nodes x 8 H100-like GPUs = 256 GPUs)."""

    racks: int = 4
    nodes_per_rack: int = 8
    gpus_per_node: int = 8

    def __post_init__(self) -> None:
        """Reject shapes that cannot exist."""
        for name in ("racks", "nodes_per_rack", "gpus_per_node"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"FleetSpec.{name} must be a positive integer, got {value!r}")
        if self.gpus_per_node > 16:
            raise ValueError(
                f"FleetSpec.gpus_per_node must be at most 16, got {self.gpus_per_node}"
            )

    @property
    def n_nodes(self) -> int:
        """Return the number of nodes."""
        return self.racks * self.nodes_per_rack

    @property
    def n_gpus(self) -> int:
        """Return the number of GPUs."""
        return self.n_nodes * self.gpus_per_node

    def rack_id(self, r: int) -> str:
        """Return the id of rack ``r`` (0-based): rack-a1, rack-a2, ..."""
        return f"rack-a{r + 1}"

    def pdu_id(self, r: int) -> str:
        """Return the PDU feeding rack ``r``."""
        return f"pdu-a{r + 1}"

    def crac_id(self, r: int) -> str:
        """Return the cooling unit of rack ``r``."""
        return f"crac-a{r + 1}"

    def leaf_id(self, r: int) -> str:
        """Return the leaf switch of rack ``r``."""
        return f"leaf-a{r + 1}"

    def node_name(self, n: int) -> str:
        """Return the name of node ``n`` (0-based, fleet-wide): gpu-node-001, ..."""
        return f"gpu-node-{n + 1:03d}"

    @property
    def node_names(self) -> tuple[str, ...]:
        """Return every node name in rack order."""
        return tuple(self.node_name(n) for n in range(self.n_nodes))

    @property
    def gpu_keys(self) -> tuple[str, ...]:
        """Return every ``<node>/<gpu>`` key in node-major order (the simulator's GPU axis)."""
        return tuple(f"{node}/{g}" for node in self.node_names for g in range(self.gpus_per_node))

    def rack_of_node(self, n: int) -> int:
        """Return the rack index of node index ``n``."""
        return n // self.nodes_per_rack

    def component_rack(self, component_id: str) -> int | None:
        """Return the rack index a component serves, or None if it is not one of ours."""
        for r in range(self.racks):
            if component_id in (self.pdu_id(r), self.crac_id(r), self.leaf_id(r)):
                return r
        return None

    def component_racks(self, component_id: str) -> tuple[int, ...]:
        """Return the indices of every rack a component serves (empty if it is not one of ours)."""
        rack = self.component_rack(component_id)
        return () if rack is None else (rack,)

    def components_of_kind(self, kind: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Return the distinct components of ``kind`` (pdu, cooling, switch) and their racks."""
        ids = {"pdu": self.pdu_id, "cooling": self.crac_id, "switch": self.leaf_id}[kind]
        return tuple((ids(r), (r,)) for r in range(self.racks))

    def model_name(self, n: int) -> str:
        """Return the GPU model name (DCGM's ``modelName``) of node index ``n``."""
        return MODEL_NAME

    def gpu_uuid(self, node: str, gpu: int) -> str:
        """Return a stable, UUID-shaped id for a GPU (DCGM's ``UUID`` label)."""
        return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}/{gpu}.gpu-risk.sim"))

    def pci_bus_id(self, gpu: int) -> str:
        """Return the DCGM ``pci_bus_id`` label of GPU index ``gpu``."""
        bus = HGX_BUS_IDS[gpu] if gpu < len(HGX_BUS_IDS) else f"{0xC0 + gpu:02X}"
        return f"00000000:{bus}:00.0"

    def topology(self) -> Topology:
        """Return the fleet's topology: per-rack PDU, CRAC and leaf switch, with PromQL."""
        racks = []
        components: dict[str, Component] = {}
        for r in range(self.racks):
            nodes = tuple(
                self.node_name(n)
                for n in range(r * self.nodes_per_rack, (r + 1) * self.nodes_per_rack)
            )
            pdu, crac, leaf = self.pdu_id(r), self.crac_id(r), self.leaf_id(r)
            racks.append(
                Rack(
                    id=self.rack_id(r),
                    nodes=nodes,
                    power=(pdu,),
                    cooling=(crac,),
                    network=(leaf,),
                )
            )
            components[pdu] = Component(
                id=pdu,
                kind="pdu",
                metrics={
                    "output_watts": f'pdu_output_watts{{pdu="{pdu}"}}',
                    "output_volts": f'pdu_output_volts{{pdu="{pdu}"}}',
                },
            )
            components[crac] = Component(
                id=crac,
                kind="cooling",
                metrics={"supply_temp_celsius": f'crac_supply_air_celsius{{unit="{crac}"}}'},
            )
            components[leaf] = Component(
                id=leaf,
                kind="switch",
                metrics={"port_errors_total": f'switch_port_errors_total{{switch="{leaf}"}}'},
            )
        return Topology(racks=tuple(racks), components=components)

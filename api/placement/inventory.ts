import type { PlacementPolicy } from '../../schema/index.js';

/**
 * Inventory of a host in the spirit of OpenStack Placement: for each resource class a total, a reserved part
 * and an allocation ratio (overcommit); what can be allocated is (total − reserved) × ratio.
 */

/** vCPU overcommit when neither the host nor its hardware pool sets one (OpenStack's historic default). */
export const DEFAULT_CPU_ALLOCATION_RATIO = 16.0;
/** Memory overcommit when neither the host nor its hardware pool sets one (OpenStack's historic default). */
export const DEFAULT_RAM_ALLOCATION_RATIO = 1.5;
/** Ranking when the hardware pool sets none. */
export const DEFAULT_PLACEMENT_POLICY: PlacementPolicy = 'spread';

export interface ResourceInventory {
  total: number;
  reserved: number;
  ratio: number;
  /** (total − reserved) × ratio, rounded down: what allocations may add up to. */
  capacity: number;
  /** Held now by the VMs counted on the host (active ones, and migrations on their way in). */
  allocated: number;
}

export interface HostInventoryRecord {
  cpus: number;
  memoryMiB: number;
  reservedVcpus: number;
  reservedMemoryMiB: number;
  /** The host's own ratios; null falls back to its hardware pool's, then to the defaults. */
  cpuAllocationRatio: number | null;
  ramAllocationRatio: number | null;
  poolCpuAllocationRatio: number | null;
  poolRamAllocationRatio: number | null;
  allocatedVcpus: number;
  allocatedMemoryMiB: number;
}

export function resourceInventory(
  total: number,
  reserved: number,
  ratio: number,
  allocated: number,
): ResourceInventory {
  return { total, reserved, ratio, capacity: Math.floor(Math.max(0, total - reserved) * ratio), allocated };
}

export function hostInventory(h: HostInventoryRecord): {
  vcpus: ResourceInventory;
  memoryMiB: ResourceInventory;
} {
  return {
    vcpus: resourceInventory(
      h.cpus,
      h.reservedVcpus,
      h.cpuAllocationRatio ?? h.poolCpuAllocationRatio ?? DEFAULT_CPU_ALLOCATION_RATIO,
      h.allocatedVcpus,
    ),
    memoryMiB: resourceInventory(
      h.memoryMiB,
      h.reservedMemoryMiB,
      h.ramAllocationRatio ?? h.poolRamAllocationRatio ?? DEFAULT_RAM_ALLOCATION_RATIO,
      h.allocatedMemoryMiB,
    ),
  };
}

/** Whether `request` more fits: allocated + request ≤ capacity. */
export const fits = (inv: ResourceInventory, request: number): boolean =>
  inv.allocated + request <= inv.capacity;

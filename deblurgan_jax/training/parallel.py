"""Data parallelism over devices and hosts: one train step, two drivers, one checkpoint layout.

The step (`train.train_step`) is written once with an optional axis name: it averages both
networks' gradients and its metrics with `lax.pmean` over that axis and folds the device index
into its RNG. `DataParallel` runs it on a 1-D mesh of devices (every host's devices, grouped by
host, as the data pipeline hands out host-contiguous slices of each global batch):

- 'pmap': `jax.pmap`, the classic layout: the state is stacked, one copy per local device, and
  each host passes its local devices' shards of the batch (a leading device axis).
- 'sharding': `jax.jit` of `jax.shard_map` over a `NamedSharding` mesh (what JAX recommends):
  the state is one global array replicated on every device, the batch one global array split
  along its batch axis.
- 'single': one device and one process: the plain jitted step, state on the default device.

Both parallel drivers run shard_map with `check_vma=False` (pmap does so internally): the
gradient of a replicated parameter inside the step is then the device's own, and the step's
pmean averages it. With the check on, shard_map already SUMS replicated parameters' gradients
across devices, and the pmean of that sum leaves it N times too large (Adam hides most of it).

Checkpoints hold one copy of the state: a global array replicated over the mesh, which Orbax
writes once whatever the number of hosts, and which restores onto any device count.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"  # the data-parallel mesh axis; the step's collectives run over it

# `step(state, batch, feature_params, *, axis_name=None, alpha=None) -> (state, metrics)`.
StepFn = Callable[..., tuple[Any, dict[str, Any]]]


def initialize_distributed(dist_config: ml_collections.ConfigDict) -> bool:
    """Starts `jax.distributed` when the config, or JAX's environment, asks for several processes.

    Multi-process when any of `coordinator_address` (or $JAX_COORDINATOR_ADDRESS),
    `num_processes` > 0, `process_id` >= 0 or `auto_detect` (Slurm, Open MPI, Kubernetes, TPU:
    JAX fills the unset fields) is given. Must run before JAX touches a device. On CPU, JAX's
    cross-process collectives default to gloo (`jax_cpu_collectives_implementation`).

    Returns:
      whether this is a multi-process run.
    """
    if jax.distributed.is_initialized():
        return True
    address = dist_config.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num_processes, process_id = int(dist_config.num_processes), int(dist_config.process_id)
    if not (address or num_processes > 0 or process_id >= 0 or dist_config.auto_detect):
        return False
    jax.distributed.initialize(
        coordinator_address=address or None,
        num_processes=num_processes if num_processes > 0 else None,
        process_id=process_id if process_id >= 0 else None,
    )
    return True


def data_parallel_devices(num_devices: int) -> tuple[jax.Device, ...]:
    """The first `num_devices` (0: all) local devices of every process, grouped by process."""
    local = jax.local_device_count()
    per_process = num_devices or local
    if not 0 < per_process <= local:
        raise ValueError(
            f"config.num_devices {num_devices} must be 0 (all) or 1..{local}, the "
            f"devices of this process"
        )
    return tuple(
        d
        for p in range(jax.process_count())
        for d in sorted(jax.local_devices(process_index=p), key=lambda d: d.id)[:per_process]
    )


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Where the state and the batches of a run live, and its compiled step.

    Three layouts: the host's (NumPy or single-device arrays, what `create_train_state` and the
    data pipeline give), the checkpoint's (one copy: a global array replicated over the mesh, or
    a single-device array for 'single') and the driver's (stacked per local device for 'pmap').
    """

    driver: str  # 'single', 'pmap' or 'sharding'
    devices: tuple[jax.Device, ...]  # the run's devices, all processes, grouped by process

    @functools.cached_property
    def mesh(self) -> Mesh:
        return Mesh(np.array(self.devices), (AXIS,))

    @functools.cached_property
    def local_devices(self) -> tuple[jax.Device, ...]:
        return tuple(d for d in self.devices if d.process_index == jax.process_index())

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    # ---------------------------------------------------------------------------------- state

    def place_single_copy(self, tree: Any) -> Any:
        """Host values -> the checkpoint layout (every process passes the same values).

        'single' commits the arrays to the device, as a restored checkpoint's are: the step's
        compiled program depends on its inputs' placement, so a fresh and a resumed run then
        share one compilation (in memory and in the persistent cache)."""
        if self.driver == "single":
            return jax.device_put(tree, self.devices[0])
        sharding = NamedSharding(self.mesh, P())

        def place(x):
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree_util.tree_map(place, tree)

    def from_single_copy(self, tree: Any) -> Any:
        """Checkpoint layout -> the driver's layout (a copy per local device for 'pmap')."""
        if self.driver != "pmap":
            return tree
        return self._stack(self._host_copy(tree))

    def to_single_copy(self, tree: Any) -> Any:
        """The driver's layout -> the checkpoint layout (what Orbax saves)."""
        if self.driver != "pmap":
            return tree
        return self.place_single_copy(
            jax.tree_util.tree_map(lambda host: host[0], self._host_copy(tree))
        )

    def replicate(self, tree: Any) -> Any:
        """Host values -> the driver's layout (e.g. the frozen VGG params)."""
        if self.driver != "pmap":
            return self.place_single_copy(tree)
        return self._stack(jax.tree_util.tree_map(np.asarray, tree))

    # 'pmap' layout changes go through host memory: indexing or reshaping each device's copy
    # on device would compile one small program per device and leaf shape at every start.

    def _stack(self, host_tree: Any) -> Any:
        """NumPy leaves -> one copy per local device, stacked along a leading device axis."""
        sharding = NamedSharding(Mesh(np.array(self.local_devices), (AXIS,)), P(AXIS))
        stacked = (len(self.local_devices),)
        return jax.tree_util.tree_map(
            lambda host: jax.make_array_from_callback(
                stacked + host.shape, sharding, lambda index: host[None]
            ),
            host_tree,
        )

    @staticmethod
    def _host_copy(tree: Any) -> Any:
        """A NumPy copy of this process's first copy of each leaf: a copy, not a view of a
        device buffer, which the next step may take over (the state is donated)."""
        return jax.tree_util.tree_map(
            lambda x: np.array(min(x.addressable_shards, key=lambda s: s.device.id).data), tree
        )

    def local_copy(self, tree: Any) -> Any:
        """One copy on this process's first device, from any layout (evaluation, logging)."""
        if self.driver == "single":
            return tree

        def first(x):
            data = min(x.addressable_shards, key=lambda s: s.device.id).data
            return data[0] if self.driver == "pmap" else data

        return jax.tree_util.tree_map(first, tree)

    # -------------------------------------------------------------------------------- batches

    def shard_batch(self, tree: Any, axis: int = 0) -> Any:
        """This host's slice of a global batch (split along `axis`) -> the driver's layout."""
        if self.driver == "single":
            return tree
        num_local = len(self.local_devices)

        def check(x):
            if x.shape[axis] % num_local:
                raise ValueError(
                    f"this host's batch of {x.shape[axis]} does not split over its "
                    f"{num_local} devices"
                )

        jax.tree_util.tree_map(check, tree)
        if self.driver == "pmap":  # a device axis in front of the batch axis, as in_axes says
            return jax.tree_util.tree_map(
                lambda x: np.reshape(x, x.shape[:axis] + (num_local, -1) + x.shape[axis + 1 :]),
                tree,
            )
        sharding = NamedSharding(self.mesh, P(*([None] * axis), AXIS))
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree
        )

    # ----------------------------------------------------------------------------------- step

    def compile_step(
        self, step: StepFn, batch_axis: int = 0
    ) -> Callable[..., tuple[Any, dict[str, Any]]]:
        """`step` -> `(state, batch, feature_params, alpha=None) -> (state, metrics)`, compiled
        for this driver with the state donated. `batch_axis` is the batch's split axis (1 for
        per-critic-update batches); `alpha` (n_critic, batch) is always split along axis 1."""
        if self.driver == "single":

            def run_single(state, batch, feature_params, alpha=None):
                return step(state, batch, feature_params, alpha=alpha)

            return jax.jit(run_single, donate_argnums=(0,))

        def run(state, batch, feature_params, alpha):
            return step(state, batch, feature_params, axis_name=AXIS, alpha=alpha)

        if self.driver == "pmap":
            # Host-local in and out: the state and feature params carry a leading device axis.
            compiled = jax.pmap(
                run,
                AXIS,
                in_axes=(0, batch_axis, 0, 1),
                out_axes=0,
                devices=self.devices,
                donate_argnums=(0,),
            )
        else:
            # check_vma=False: per-device gradients, averaged by the step's own pmean (see the
            # module docstring for why the checked mode would sum them).
            sharded = jax.shard_map(
                run,
                mesh=self.mesh,
                check_vma=False,
                in_specs=(P(), P(*([None] * batch_axis), AXIS), P(), P(None, AXIS)),
                out_specs=(P(), P()),
            )
            compiled = jax.jit(sharded, donate_argnums=(0,))

        def run_parallel(state, batch, feature_params, alpha=None):
            return compiled(state, batch, feature_params, alpha)

        return run_parallel


def create(config: ml_collections.ConfigDict) -> DataParallel:
    """The data-parallel setup of `config` (`num_devices` per process, `parallel` driver)."""
    devices = data_parallel_devices(int(config.num_devices))
    if config.batch_size % len(devices):
        raise ValueError(
            f"config.batch_size {config.batch_size} (the global batch) must be a "
            f"multiple of the {len(devices)} devices of the run "
            f"({jax.process_count()} process(es) x config.num_devices): set "
            f"--config.batch_size={len(devices)} (or a multiple), or "
            f"--config.num_devices=1 to train on one device"
        )
    driver = "single" if len(devices) == 1 else config.parallel
    return DataParallel(driver, devices)

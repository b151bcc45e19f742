"""Compile targets without the hardware: a topology name → compile-only devices + chip figures.

`devices(name)` gives the devices of a TPU or GPU topology that JAX can compile for on a
CPU-only machine (ahead-of-time, "deviceless"); `chip(name)` the published per-chip figures
the roofline in `bench.topology` divides by. Names, as `--topology` takes them:

- TPU: what `jax.experimental.topologies.get_topology_desc(platform="tpu")` accepts,
  `GENERATION:AxB[xC]`: `v5e:2x2` (4 chips), `v5e:4x4`, `v5e:16x16` (256), `v6e:8x8`,
  `v5p:2x4x4` (32 chips = v5p-64), `v4:2x2x4` (one device per chip: megacore). A mesh axis
  must not split a physical axis (`v5p:4x4x4`: mesh (4, 16), not (8, 8)).
- GPU: `h100:SLICESxHOSTSxGPUS`, e.g. `h100:1x2x8` = 16 H100 SXM in 2 hosts of 8.

Needs the compile-only back-ends of the `aot` extra (`pip install -e ".[aot]"`: libtpu for
TPU, jax-cuda12-plugin for GPU; no accelerator, driver or CUDA library is used). The
process must run with `JAX_PLATFORMS=cpu` (`bench.topology` sets it) so that JAX does not
try to open a local GPU or TPU.
"""

from __future__ import annotations

import dataclasses
import os
import re

# "v5e:4x4", "v5p:2x4x4", "h100:1x2x8"
_NAME = re.compile(r"^(?P<chip>[a-zA-Z0-9]+):(?P<shape>[0-9]+(x[0-9]+)*)$")


@dataclasses.dataclass(frozen=True)
class Chip:
    """Published figures of one chip (one device on the mesh).

    `peak_flops` maps a compute dtype to FLOP/s of its matrix units (dense);
    `interconnect_bytes_per_s` is the bidirectional per-chip bandwidth a collective over
    the whole topology can use (`cross_host_bytes_per_s` when it spans hosts, GPUs only).
    """

    name: str
    platform: str  # "tpu" | "gpu"
    peak_flops: dict[str, float]
    memory_bytes: float
    memory_bytes_per_s: float
    interconnect_bytes_per_s: float
    cross_host_bytes_per_s: float | None = None
    source: str = ""


G, T = 1e9, 1e12
# TPU: at the default matmul precision XLA:TPU runs a float32 matmul or convolution as one
# bfloat16 pass on the MXU, so the float32 peak is the bfloat16 one. ICI: the published
# bidirectional inter-chip bandwidth per chip.
CHIPS = {
    "v4": Chip("TPU v4", "tpu", {"bfloat16": 275 * T, "float32": 275 * T}, 32 * 2**30,
               1200 * G, 300 * G,
               source="cloud.google.com/tpu/docs/v4 (275 TFLOP/s, 32 GiB, 1200 GB/s); ICI: "
                      "TPU v4 paper (Jouppi et al., ISCA 2023), 6 links x 50 GB/s"),
    "v5e": Chip("TPU v5e", "tpu", {"bfloat16": 197 * T, "float32": 197 * T}, 16e9,
                819 * G, 400 * G,
                source="cloud.google.com/tpu/docs/v5e (197 TFLOP/s, 16 GB, 819 GB/s, "
                       "ICI 400 GB/s bidirectional)"),
    "v5p": Chip("TPU v5p", "tpu", {"bfloat16": 459 * T, "float32": 459 * T}, 95 * 2**30,
                2765 * G, 1200 * G,
                source="cloud.google.com/tpu/docs/v5p (459 TFLOP/s, 95 GiB, 2765 GB/s, "
                       "ICI 1200 GB/s bidirectional)"),
    "v6e": Chip("TPU v6e", "tpu", {"bfloat16": 918 * T, "float32": 918 * T}, 32e9,
                1638 * G, 800 * G,
                source="cloud.google.com/tpu/docs/v6e (918 TFLOP/s, 32 GB, 1638 GB/s, "
                       "ICI 800 GB/s bidirectional)"),
    # float32 matmuls and convolutions run as TF32 on the tensor cores by default in XLA:GPU.
    "h100": Chip("H100 SXM 80GB", "gpu", {"bfloat16": 989.4 * T, "float32": 494.7 * T},
                 80e9, 3350 * G, 900 * G, cross_host_bytes_per_s=100 * G,
                 source="NVIDIA H100 datasheet (SXM: 989.4 TFLOP/s bf16 dense, 494.7 TF32 "
                        "dense, 80 GB HBM3 at 3.35 TB/s, NVLink 900 GB/s bidirectional); "
                        "across hosts one 400 Gb/s InfiniBand NIC per GPU (DGX H100) = "
                        "100 GB/s bidirectional"),
}

# stream_executor.GpuTargetConfigProto (text) of an H100 SXM 80 GB: the device description
# XLA:GPU compiles for in place of a visible GPU (public H100 SXM figures: 132 SMs,
# 128 FP32 lanes per SM, 228 KiB shared memory per SM, 50 MiB L2, 3.35 TB/s, 1.98 GHz,
# compute capability 9.0), with CUDA 12.8 and cuDNN 9.8 as the assumed runtime.
H100_TARGET_CONFIG = """
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 84978434048
  shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 minor: 0 }
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
runtime_version { major: 12 minor: 8 patch: 0 }
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 8 patch: 0 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""
GPU_TARGET_CONFIGS = {"h100": H100_TARGET_CONFIG}
# XLA:GPU 0.10.2 compiling without a GPU fails on the IENet step ("Couldn't find output tile
# sizes that satisfy hlo: dot …" for Triton GEMM fusions of small f32 attention matmuls; no
# autotuner can run): its GEMMs go to cuBLAS instead. FLOPs are the same; the fusions (and
# so the temporaries) may differ a little from a compile on a real H100.
GPU_COMPILER_OPTIONS = {"xla_gpu_enable_triton_gemm": False}


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed `--topology` name: chip key, shape, and for GPUs the hosts spanned."""

    name: str
    chip: Chip
    shape: tuple[int, ...]

    @property
    def hosts(self) -> int:
        """Hosts the topology spans (GPU: slices × hosts; TPU: not modelled, 1)."""
        return self.shape[0] * self.shape[1] if self.chip.platform == "gpu" else 1

    @property
    def compiler_options(self) -> dict:
        """XLA options for compiling on this machine for the target (see above)."""
        return dict(GPU_COMPILER_OPTIONS) if self.chip.platform == "gpu" else {}

    @property
    def interconnect_bytes_per_s(self) -> float:
        """What a collective over every device can use per chip (the slowest link crossed)."""
        if self.hosts > 1 and self.chip.cross_host_bytes_per_s:
            return self.chip.cross_host_bytes_per_s
        return self.chip.interconnect_bytes_per_s


def parse(name: str) -> Target:
    """`Target` of a `--topology` name; ValueError naming the choices if unknown."""
    m = _NAME.match(name.strip())
    key = m.group("chip").lower() if m else ""
    if not m or key not in CHIPS:
        raise ValueError(f"--topology={name!r}: expected CHIP:SHAPE with CHIP one of "
                         f"{tuple(CHIPS)}, e.g. v5e:4x4, v5p:2x4x4, h100:1x2x8")
    shape = tuple(int(s) for s in m.group("shape").split("x"))
    chip = CHIPS[key]
    if chip.platform == "gpu" and len(shape) != 3:
        raise ValueError(f"--topology={name!r}: a GPU topology is {key}:SLICESxHOSTSxGPUS, "
                         "e.g. h100:1x2x8")
    return Target(f"{key}:{m.group('shape')}", chip, shape)


def devices(target: Target) -> list:
    """The compile-only devices of `target` (ImportError/RuntimeError if its back-end is not
    installed: see the module docstring)."""
    from jax.experimental import topologies

    key = target.name.split(":")[0]
    shape = "x".join(map(str, target.shape))
    if target.chip.platform == "tpu":
        # compile-only: several processes may load libtpu at once (else /tmp/libtpu_lockfile)
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        extra = {"chip_config_name": "megacore"} if key == "v4" else {}
        topo = topologies.get_topology_desc(topology_name=target.name, platform="tpu",
                                            **extra)
    else:
        topo = topologies.get_topology_desc(key, "cuda", target_config=GPU_TARGET_CONFIGS[key],
                                            topology=shape)
    return list(topo.devices)

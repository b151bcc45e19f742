"""ienet_jax: IENet and TS-CAN remote heart-rate estimation in JAX/Flax."""

__version__ = "0.1.0"

"""simfarm: run HFSS simulations and any command across a farm of machines and clusters."""

__version__ = "0.1.0"

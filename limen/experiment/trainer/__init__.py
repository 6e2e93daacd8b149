"""Rebuild winning rounds into portable Sensors: Trainer, Sensor, ReconstructionError."""

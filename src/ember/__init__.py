"""ember: two-stage container builds of modern GPU software for legacy NVIDIA GPUs."""

__version__ = "0.1.0"

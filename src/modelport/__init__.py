"""modelport: self-hosted inference endpoints for Hugging Face models."""

__version__ = "0.1.0"

__all__ = ["__version__"]

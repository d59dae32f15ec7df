"""gridwatch: the shared contract, site config and command line of the gridwatch system."""

__version__ = "0.1.0"
__all__ = ["__version__"]

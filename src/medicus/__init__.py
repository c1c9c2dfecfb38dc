"""medicus: a health-data platform for a region's hospitals."""

__version__ = "0.1.0"

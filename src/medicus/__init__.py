"""medicus: a health-data platform for a region's hospitals."""

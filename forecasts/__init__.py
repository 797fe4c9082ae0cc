"""park-vpp: forecasts."""

"""park-vpp: controllers."""

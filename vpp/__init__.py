"""park-vpp: vpp."""

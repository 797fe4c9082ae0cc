"""park-vpp: api."""

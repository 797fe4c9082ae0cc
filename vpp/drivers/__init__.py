"""Plant drivers: the park's devices behind vpp.cycle.PlantDriver."""

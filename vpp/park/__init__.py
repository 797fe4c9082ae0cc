"""The park as data: the model (frozen dataclasses, one sign convention), measured state,
YAML configuration, tariffs, China's calendar, measured profiles, EV sessions, emission
factors and the PV arrays' physics (pvlib).

The ground layer: it imports no other park-vpp package, and every other package may import it.
"""

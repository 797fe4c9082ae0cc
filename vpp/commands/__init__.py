"""Subcommands of the vpp command line, one module each (loaded by ``vpp.cli`` on demand).

The top of the house: may import any package, including ``api``; nothing imports it but
``vpp.cli``.
"""

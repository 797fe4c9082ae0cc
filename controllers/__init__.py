"""Dispatch, pure computation: the cvxpy model (one block per device kind), the LP presolve and
HiGHS hot start, baselines, the safety layer, invariants and the cost yardstick.

Imports only ``vpp.park`` of park-vpp (and numpy, scipy, cvxpy, highspy); never an edge library.
"""

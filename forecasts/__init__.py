"""PV and load forecasters, pure computation: history and calendar in, quantile arrays out;
baselines and backtest metrics.

Imports only ``vpp.park`` of park-vpp (and numpy, pandas, pvlib, scikit-learn); never an edge
library.
"""

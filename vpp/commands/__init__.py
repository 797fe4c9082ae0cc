"""Subcommands of the vpp command line."""

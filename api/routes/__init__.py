"""Routes, one module per group of resources."""

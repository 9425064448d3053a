"""The result models every task returns: the `Report` (with `RunConfig` and `Timings`) and its
typed sections (tail audit, mix budget, lineage, drift, cluster shares), with their renderers.
"""

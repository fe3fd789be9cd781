"""Bulk classification of files: the row contract (`rows`), in-process (`local`) and Ray Data (`ray_engine`)."""

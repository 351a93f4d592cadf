"""Trace formats (DVFS, battery discharge, power), parsers from real sources, recorders and samples.

Light on purpose: numpy only, so a board can record traces without the controller's dependencies.
"""

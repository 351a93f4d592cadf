"""The RT3 method: models and data, block pruning (BP), pattern pruning (PP), packing, and the reconfigurable
runtime with torch and onnxruntime backends.

Importing this package imports nothing heavy. The torch-free :mod:`testbed.rt3.artifact` (and the board's
onnxruntime runtime, :mod:`devices.ort_runtime`) are what a board needs; everything else requires the ``ml`` extra
(torch).
"""

"""Battery models: RT3's ideal energy bucket (exact) and a Thevenin equivalent-circuit model.

- :mod:`testbed.battery.bucket` — RT3's runs accounting, bit-exact with the reference code;
- :mod:`testbed.battery.cell` — cell parameter files (TOML) and the bundled cells;
- :mod:`testbed.battery.ecm` — OCV(SoC) + R0 + 0–2 RC pairs driven by power, three end-of-life conditions;
- :mod:`testbed.battery.simulate` — life of a cell under a power trace, ECM or bucket;
- :mod:`testbed.battery.crosscheck` — optional PyBaMM Thevenin cross-check (needs ``pybamm``).
"""

"""Battery models behind one protocol, chosen by name (:mod:`testbed.battery.registry`).

- :mod:`testbed.battery.model` — the :class:`~testbed.battery.model.BatteryModel` protocol (step by power
  over a time slice), its parameters and their one validator;
- :mod:`testbed.battery.registry` — name → model: ``rt3-accounting``, ``energy-bucket`` (alias ``bucket``), ``ecm``;
- :mod:`testbed.battery.rt3_accounting` — RT3's ideal bucket and runs accounting, bit-exact with the reference code;
- :mod:`testbed.battery.energy_bucket` — an energy store with converter efficiency and static power;
- :mod:`testbed.battery.ecm` — OCV(SoC) + R0 + 0–2 RC pairs driven by power, three end-of-life conditions;
- :mod:`testbed.battery.cell` — cell parameter files (TOML) and the bundled cells;
- :mod:`testbed.battery.simulate` — life of a cell under a repeating power trace, any model;
- :mod:`testbed.battery.crosscheck` — optional PyBaMM Thevenin cross-check (needs ``pybamm``).
"""

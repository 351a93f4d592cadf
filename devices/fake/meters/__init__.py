"""Fake power meters shipped in the package, speaking the real protocols, with fault injection.

* :mod:`.um_device` — a RuiDeng UM24C/UM25C/UM34C on a pty pair (130-byte frames on ``0xF0``);
* :mod:`.ina_stream` — an Arduino streaming INA219/INA226 CSV on a pty pair;
* :mod:`.sysfs_trees` — INA3221 (JetPack 4 IIO / JetPack 5 hwmon) and RAPL powercap trees;
* :mod:`.pmic` — a ``vcgencmd`` answering ``pmic_read_adc``;
* :mod:`.waveform` — analytic power waveforms and the ``wave://`` meter built on them.
"""

"""Board-side code of the RT3 testbed.

Everything that runs on a board lives here: sysfs access behind an injectable root, cpufreq/devfreq
control with save and restore, thermal and throttle state, board profiles, and the fake kernel used
for tests and emulation. This package never imports torch or transformers.
"""

__version__ = "0.1.0"

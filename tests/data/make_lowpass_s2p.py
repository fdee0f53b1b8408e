"""Writes tests/data/lowpass_filter.s2p with scikit-rf: a 5th-order LC low-pass filter
(50 ohm, cutoff near 2.4 GHz) swept 0.1-6 GHz in 60 points, in Touchstone 1.1 dB/angle
form. Usage: python tests/data/make_lowpass_s2p.py tests/data/lowpass_filter"""
import sys

import skrf as rf
from skrf.media import DefinedGammaZ0

freq = rf.Frequency(0.1, 6, 60, unit="GHz")
line = DefinedGammaZ0(frequency=freq, z0=50)
net = (line.shunt_capacitor(1.6e-12) ** line.inductor(5.3e-9) ** line.shunt_capacitor(2.6e-12)
       ** line.inductor(5.3e-9) ** line.shunt_capacitor(1.6e-12))
net.name = "lowpass_filter"
net.comments = ("5th-order LC low-pass filter, 50 ohm, generated with scikit-rf "
                f"{rf.__version__} by tests/data/make_lowpass_s2p.py")
net.write_touchstone(sys.argv[1], form="db")

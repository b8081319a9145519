"""Hazardous materials: primitives with no protocol state and no safety net.

Everything here takes and returns bytes or numpy arrays and trusts its caller to use it correctly
(unique keys, correct moduli, secret inputs drawn from a CSPRNG). Use the protocol objects in
:mod:`fedprivacy.secagg` unless you are building a protocol yourself.
"""

"""Hazardous materials: primitives with no protocol state and no safety net.

Everything here takes and returns bytes or numpy arrays and trusts its caller to use it correctly
(unique keys, correct moduli, secret inputs drawn from a CSPRNG). Use the protocol objects in
:mod:`fedprivacy.secagg` unless you are building a protocol yourself.

Every primitive the package calls goes through here, once: ``kex`` (X25519, the low-order key check,
HKDF), ``aead`` (AES-GCM), ``prg`` (AES-CTR keystream), ``prf`` (AES as a PRF over blocks),
``identity`` (Ed25519), ``randomness`` (the ``RandomSource`` type and the OS CSPRNG), ``shamir``,
``field``, ``sampling`` and ``discrete_gaussian``. No module outside this package imports
``cryptography`` (``tests/test_layering.py`` checks it).
"""

"""Where the shared library leans on a library's internals: one module per library, named
for it, each guarded by a test that fails when the library changes underneath.

Everything else in the product code uses libraries through their public APIs only
(``tests/test_private_internals.py`` checks).
"""

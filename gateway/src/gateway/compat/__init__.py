"""Where the gateway leans on a library's internals: one module per library, each guarded by
a test that fails when the library changes underneath."""

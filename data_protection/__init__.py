"""Customer data protection: payload encryption, the codec server, log redaction, the document store.

Submodules are imported on use (`data_protection.codec`, `.keys`, `.codec_server`,
`.redaction`, `.documents`) so a process only loads what it needs.
"""

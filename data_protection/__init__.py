"""Customer data protection: payload encryption, the codec server, log redaction."""

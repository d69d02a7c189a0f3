"""Operations over many customers at once (bringing in existing customers, ...), run from
`starter.py`. Each command is its own module; the starter only parses and dispatches."""

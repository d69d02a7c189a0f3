"""`make demo`: the product end to end on one machine."""

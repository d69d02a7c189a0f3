"""The contracts every part shares: workflow messages, activity models and their names.

A leaf package: it imports nothing of this project but `iron_client.models`, so `workflows/`,
`activities/`, the starter, the receiver and the tests all depend on it and never on each other.
"""

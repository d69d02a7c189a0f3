"""The codec server, a process beside the worker and the receiver: lets the Temporal Web UI and
CLI show encrypted payloads in clear text (`python -m codec_server`, see `codec_server/app.py`).
"""

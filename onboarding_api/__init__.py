"""The onboarding HTTP API (`python -m onboarding_api`): the backend API of
`operations/onboardings.py` over HTTP, with bearer keys, problem documents and a committed
OpenAPI contract (`openapi.json`)."""

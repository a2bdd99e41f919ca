"""The indexer's HTTP API: FastAPI app, Sign-In with Ethereum, problem details, rate limits."""

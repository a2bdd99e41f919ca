"""GraphQL APIs of DIMO's developer surface (Strawberry), one module per API."""

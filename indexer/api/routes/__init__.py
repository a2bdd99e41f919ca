"""The API's routers, one module per resource, each an `APIRouter` with a prefix and tags."""

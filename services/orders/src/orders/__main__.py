"""`python -m orders`: serve the HTTP app under uvicorn with the platform's logging."""

from orders.config import get_settings
from orders.main import create_app
from shared.server import serve

serve(create_app, get_settings())

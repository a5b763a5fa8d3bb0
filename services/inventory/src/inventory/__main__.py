"""`python -m inventory`: serve the HTTP app under uvicorn with the platform's logging."""

from inventory.config import get_settings
from inventory.main import create_app
from shared.server import serve

serve(create_app, get_settings())

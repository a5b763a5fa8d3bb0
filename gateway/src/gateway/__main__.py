"""`python -m gateway`: serve the HTTP app under uvicorn with the platform's logging."""

from shared.server import serve

from gateway.config import get_settings
from gateway.main import create_app

serve(create_app, get_settings())

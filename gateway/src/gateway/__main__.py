"""`python -m gateway`: serve the HTTP app under uvicorn with the platform's logging."""

from gateway.config import get_settings
from gateway.main import create_app
from shared.server import serve

serve(create_app, get_settings())

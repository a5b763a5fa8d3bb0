"""`python -m payments`: serve the HTTP app under uvicorn with the platform's logging."""

from payments.config import get_settings
from payments.main import create_app
from shared.server import serve

serve(create_app, get_settings())

"""The legacy Flask backend (`pip install 'drum[flask]'`): werkzeug's server or gunicorn, same routes and handlers."""

"""Side-by-side benchmark of drum's servers against DRUM 1.18.1 (`make bench`, `python -m bench`)."""

"""The Face Interpolator service: FastAPI app, Lambda entry point, image I/O, faces, and the model runner."""

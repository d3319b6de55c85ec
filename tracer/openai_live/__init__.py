"""The OpenAI Live API (``/v1/live/sessions``): its protocol model (``.model``)."""

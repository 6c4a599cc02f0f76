"""Talking to the model: the streaming client, requests, parameters, token estimates."""

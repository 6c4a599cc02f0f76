"""Drawing answers on a platform: the surface contract, renderers, pages and pacing."""

"""A request's stages, in the order gateway/proxy.py runs them: authenticate, admit, route,
hold, (translation.py), forward, relay, record. Each returns a value or raises the API error."""

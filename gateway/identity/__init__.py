"""Who is calling: force-system clients (OAuth2 client credentials) and, later, analysts."""

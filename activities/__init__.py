"""Activities and the clients for the outside world they are handed."""

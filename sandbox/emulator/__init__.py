"""GKE API emulator, CONNECT proxy and admin API of the sandbox daemon."""

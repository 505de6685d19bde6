"""Static files of the player page (served by control_plane/api/player_page.py)."""

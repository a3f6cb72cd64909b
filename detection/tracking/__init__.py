"""People tracks: the tracker (tracker.py) and the evidence kept of a track (tracks.py)."""

"""Behaviour rules that turn people's tracks and keypoints over zone kinds into detections."""

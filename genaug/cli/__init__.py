"""Thin click commands over the genaug library. Only this package talks to the terminal."""

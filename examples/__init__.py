"""Runnable examples built on funnel."""

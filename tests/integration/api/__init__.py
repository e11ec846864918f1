"""Tests of the backend API (arbx.api) on SQLite and PostgreSQL."""

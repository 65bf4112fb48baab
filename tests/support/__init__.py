"""Helpers the tests share: CLI runs, servers, generated data, composed configs."""

"""Tests of tether-client (unit tests on a fake server, integration tests on `tether serve`)."""

"""Parsing landed exports into the canonical contract, with a reason for everything refused."""
